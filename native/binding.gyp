{
  "targets": [
    {
      "target_name": "vgpu_flip",
      "sources": [
        "addon/addon.cc",
        "addon/drm.cc",
        "addon/vfio.cc",
        "addon/memio.cc",
        "addon/uevent.cc",
        "addon/sockcred.cc",
        "addon/unixsock.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I libdrm | sed -e 's/-I//g')"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "_GNU_SOURCE"
      ],
      "libraries": ["<!@(pkg-config --libs libdrm)"]
    }
  ]
}
