#!/usr/bin/env bash
# Prepare the real-kernel test rig (idempotent; a second run only checks and prints a few lines).
#
#  - system packages (qemu-system-x86, busybox-static, kmod, cpio, libdrm-dev; as root)
#  - Debian's current kernel, resolved through the metapackage linux-image-amd64 (never a fixed
#    ABI): the unsigned image is extracted under the cache, the matching headers are installed
#  - linux-source of the same version, partly extracted (DRM, VFIO, mdev samples, includes)
#  - vkms.ko built out of tree (Debian does not ship it)
#  - the kernel's sample vGPU drivers mbochs.ko and mdpy.ko (samples/vfio-mdev), out of tree
#  - the project's own kernel modules: every native/<dir> whose Kbuild or Makefile has obj-m,
#    built from a copy of its sources in the cache (rebuilt when the sources change)
#  - an initramfs: busybox-static, test/rig/init.sh as /init, and only the modules needed
#
# Cache: ${VGPU_FLIP_CACHE:-/var/cache/vgpu-flip}/kernel/<kernel package version>/
# Prints "[rig] ..." progress lines on stderr, and on stdout (last line) the path of the file
# describing the prepared kernel (rig.env: shell variables KREL, KDIR, VMLINUZ, INITRD, ...).
set -euo pipefail

say() { printf '[rig] %s\n' "$*" >&2; }
die() { printf '[rig] ERROR: %s\n' "$*" >&2; exit 1; }

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$RIG_DIR/../.." && pwd)
CACHE=${VGPU_FLIP_CACHE:-/var/cache/vgpu-flip}
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- system packages
PKGS=(qemu-system-x86 busybox-static kmod cpio libdrm-dev make gcc xz-utils)
apt_updated=0
apt_update_once() {
  [ "$apt_updated" = 1 ] && return 0
  [ "$IS_ROOT" = 1 ] || return 0
  say "apt-get update"
  apt-get update -q >&2 || die "apt-get update failed"
  apt_updated=1
}
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$IS_ROOT" != 1 ]; then
    die "missing packages: ${missing[*]}; run as root: apt-get update && apt-get install -y ${missing[*]}"
  fi
  apt_update_once
  say "installing ${missing[*]}"
  apt-get install -y -q "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
fi

# ---------------------------------------------------------------- which kernel
resolve_abi() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*\)-amd64$/\1/p' | head -n1
}
candidate_version() { # package -> candidate version
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1
}
ABI=$(resolve_abi)
if [ -z "$ABI" ]; then apt_update_once; ABI=$(resolve_abi); fi
if [ -z "$ABI" ] && [ -L "$CACHE/kernel/current" ] && [ -f "$CACHE/kernel/current/rig.env" ]; then
  say "cannot resolve linux-image-amd64 (no apt lists?); using the cached kernel"
  ABI=$(. "$CACHE/kernel/current/rig.env"; echo "$ABI")
fi
[ -n "$ABI" ] || die "cannot resolve the kernel ABI: 'apt-cache depends linux-image-amd64' names no linux-image-<abi>-amd64 (run apt-get update as root)"
KREL="$ABI-amd64"
IMG_PKG="linux-image-$KREL-unsigned"
HDR_PKG="linux-headers-$KREL"
KVER=$(candidate_version "$IMG_PKG")
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then apt_update_once; KVER=$(candidate_version "$IMG_PKG"); fi
if [ -z "$KVER" ] || [ "$KVER" = "(none)" ]; then
  # offline: reuse a cache prepared for this ABI
  for d in "$CACHE"/kernel/*/; do
    [ -f "$d/rig.env" ] && [ "$(. "$d/rig.env"; echo "$KREL")" = "$KREL" ] && KVER=$(basename "$d")
  done
fi
[ -n "$KVER" ] && [ "$KVER" != "(none)" ] || die "no version of $IMG_PKG is known to apt (apt-get update?)"
SRC_SERIES=$(echo "$ABI" | sed -n 's/^\([0-9]*\.[0-9]*\)\..*/\1/p')   # 6.1.0-56 -> 6.1
SRC_PKG="linux-source-$SRC_SERIES"
KDIR="$CACHE/kernel/$KVER"
say "kernel $KREL (package version $KVER), cache $KDIR"

mkdir -p "$KDIR"
exec 9>"$KDIR/.lock"
if ! flock -n 9; then
  say "waiting for another prepare run (lock $KDIR/.lock)"
  flock 9
fi
ln -sfn "$KVER" "$CACHE/kernel/current" 2>/dev/null || true

# ---------------------------------------------------------------- headers
HDR_DIR="/usr/src/linux-headers-$KREL"
if [ ! -f "$HDR_DIR/Makefile" ]; then
  [ "$IS_ROOT" = 1 ] || die "missing kernel headers; run as root: apt-get install -y $HDR_PKG"
  say "installing $HDR_PKG"
  apt-get install -y -q "$HDR_PKG" >&2 || { apt_update_once; apt-get install -y -q "$HDR_PKG" >&2; } \
    || die "apt-get install $HDR_PKG failed"
fi

fetch_deb() { # package version -> path of the .deb under $KDIR/debs
  local pkg=$1 ver=$2 f
  mkdir -p "$KDIR/debs"
  f=$(ls "$KDIR/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$f" ]; then
    say "downloading $pkg=$ver"
    (cd "$KDIR/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2) \
      || { apt_update_once; (cd "$KDIR/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2); } \
      || die "apt-get download $pkg=$ver failed"
    f=$(ls "$KDIR/debs/${pkg}_"*.deb | head -n1)
  fi
  echo "$f"
}

# ---------------------------------------------------------------- kernel image + modules
ROOT="$KDIR/root"
if [ ! -f "$KDIR/.image-done" ]; then
  deb=$(fetch_deb "$IMG_PKG" "$KVER")
  say "extracting $(basename "$deb")"
  rm -rf "$ROOT" && mkdir -p "$ROOT"
  dpkg -x "$deb" "$ROOT"
  [ -f "$ROOT/boot/vmlinuz-$KREL" ] || die "no boot/vmlinuz-$KREL in $deb"
  # modules may be compressed: the guest's busybox modprobe wants plain .ko files
  find "$ROOT/lib/modules/$KREL" -name '*.ko.xz' -exec xz -d -f {} + 2>/dev/null || true
  depmod -b "$ROOT" "$KREL"
  cp "$ROOT/boot/vmlinuz-$KREL" "$KDIR/vmlinuz"
  rm -f "$deb"
  touch "$KDIR/.image-done"
fi

# ---------------------------------------------------------------- kernel sources (partial)
SRC="$KDIR/linux-source-$SRC_SERIES"
SRC_PARTS=(drivers/gpu/drm drivers/vfio drivers/dma-buf samples/vfio-mdev include Documentation/gpu
           Documentation/driver-api/vfio-mediated-device.rst Makefile)
if [ ! -f "$KDIR/.source-done" ]; then
  deb=$(fetch_deb "$SRC_PKG" "$KVER")
  say "extracting $(basename "$deb") (drivers/gpu/drm, drivers/vfio, samples/vfio-mdev, include, ...)"
  tmp="$KDIR/.srcdeb"
  rm -rf "$tmp" "$SRC" && mkdir -p "$tmp"
  dpkg -x "$deb" "$tmp"
  tarball=$(ls "$tmp"/usr/src/linux-source-*.tar.* | head -n1)
  [ -n "$tarball" ] || die "no linux-source tarball in $deb"
  top=$(basename "$tarball"); top=${top%.tar.*}
  members=(); for p in "${SRC_PARTS[@]}"; do members+=("$top/$p"); done
  tar -C "$KDIR" -xf "$tarball" "${members[@]}"
  [ "$KDIR/$top" = "$SRC" ] || mv "$KDIR/$top" "$SRC"
  rm -rf "$tmp" "$deb"
  touch "$KDIR/.source-done"
fi
[ -d "$SRC/drivers/gpu/drm/vkms" ] || die "no drivers/gpu/drm/vkms in $SRC (remove $KDIR/.source-done to extract again)"

# ---------------------------------------------------------------- out-of-tree builds
build_module_dir() { # name srcdir builddir [make args...]; builds when the sources changed
  local name=$1 src=$2 bdir=$3; shift 3
  local sum log
  sum=$( (cd "$src" && find . -type f ! -name '*.o' ! -name '*.ko' ! -name '*.mod' ! -name '*.mod.c' \
           ! -name '.*.cmd' ! -name '*.symvers' ! -name 'modules.order' ! -name '*.a' -print0 \
           | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-32)
  sum="$sum-$(sha256sum "$HDR_DIR/Module.symvers" 2>/dev/null | cut -c1-16)-$*"
  if [ -f "$bdir/.built" ] && [ "$(cat "$bdir/.built")" = "$sum" ]; then return 0; fi
  say "building $name (make -C $HDR_DIR M=$bdir $*)"
  rm -rf "$bdir" && mkdir -p "$bdir"
  cp -a "$src/." "$bdir/"
  log="$bdir/.build.log"
  if ! make -C "$HDR_DIR" M="$bdir" "$@" modules >"$log" 2>&1; then
    cat "$log" >&2
    die "building $name failed (sources: $src, build dir: $bdir, log: $log)"
  fi
  grep -E 'warning:' "$log" >&2 || true
  echo "$sum" >"$bdir/.built"
}

BUILD="$KDIR/build"
mkdir -p "$BUILD"
# vkms of Linux 6.1 can deadlock both CPUs (soft lockup: the whole VM freezes, a CI hang): its
# disable_vblank hrtimer_cancel()s the vblank timer while drm_vblank_disable_and_save holds
# vblank_time_lock, and the timer's callback spins on that lock in drm_handle_vblank. Slow CPUs
# (TCG under load) make the overlap likely. test/rig/vkms-vblank-deadlock.patch fixes it; the
# patched copy is what gets built (its checksum includes the patch).
VKMS_SRC="$BUILD/vkms-src"
rm -rf "$VKMS_SRC" && mkdir -p "$VKMS_SRC" && cp -a "$SRC/drivers/gpu/drm/vkms/." "$VKMS_SRC/"
patch -s -p1 -d "$VKMS_SRC" <"$RIG_DIR/vkms-vblank-deadlock.patch" || die "test/rig/vkms-vblank-deadlock.patch does not apply to $SRC/drivers/gpu/drm/vkms"
# and its planes offer FB_DAMAGE_CLIPS (as simpledrm, i915, amdgpu do; no rig driver of 6.1 has
# it), so a test can read back the damage user space sent from the plane state
patch -s -p1 -d "$VKMS_SRC" <"$RIG_DIR/vkms-damage-clips.patch" || die "test/rig/vkms-damage-clips.patch does not apply to $SRC/drivers/gpu/drm/vkms"
build_module_dir vkms "$VKMS_SRC" "$BUILD/vkms" CONFIG_DRM_VKMS=m
[ -f "$BUILD/vkms/vkms.ko" ] || die "vkms build produced no vkms.ko (see $BUILD/vkms/.build.log)"

# the kernel's own sample vGPU drivers (samples/vfio-mdev; CONFIG_SAMPLES is off in Debian):
# mbochs (DMABUF, bochs DISPI registers) and mdpy (REGION, fixed mode per type). In the
# initramfs like vkms; vm.sh loads them with --sample-drivers.
SAMPLE_NAMES=(mbochs mdpy)
build_module_dir samples/vfio-mdev "$SRC/samples/vfio-mdev" "$BUILD/samples-vfio-mdev" \
  CONFIG_SAMPLE_VFIO_MDEV_MBOCHS=m CONFIG_SAMPLE_VFIO_MDEV_MDPY=m
SAMPLE_KOS=()
for n in "${SAMPLE_NAMES[@]}"; do
  [ -f "$BUILD/samples-vfio-mdev/$n.ko" ] || die "the samples/vfio-mdev build produced no $n.ko (see $BUILD/samples-vfio-mdev/.build.log)"
  SAMPLE_KOS+=("$BUILD/samples-vfio-mdev/$n.ko")
done

# the project's modules: native/<dir> with obj-m in its Kbuild or Makefile. The whole native/
# tree minus build outputs is mirrored so relative includes (../include) keep working.
OWN_KOS=()
own_dirs=()
[ -n "${VGPU_FLIP_RIG_NO_OWN:-}" ] && say "VGPU_FLIP_RIG_NO_OWN is set: not building the project's own modules"
for d in "$CHECKOUT"/native/*/; do
  [ -n "${VGPU_FLIP_RIG_NO_OWN:-}" ] && break
  d=${d%/}
  [ "$(basename "$d")" = build ] && continue
  if grep -qsE '^\s*obj-m\b|^\s*obj-\$\(CONFIG_[A-Z0-9_]+\)' "$d/Kbuild" "$d/Makefile" 2>/dev/null; then
    own_dirs+=("$d")
  fi
done
if [ "${#own_dirs[@]}" -gt 0 ]; then
  for d in "${own_dirs[@]}"; do
    name=$(basename "$d")
    bdir="$BUILD/native/$name"
    # headers shared with the addon: mirror native/include next to the copy
    if [ -d "$CHECKOUT/native/include" ]; then
      mkdir -p "$BUILD/native/include"
      cp -a "$CHECKOUT/native/include/." "$BUILD/native/include/"
    fi
    # the include dir is hashed with the module sources through a make variable
    inc_sum=$( [ -d "$CHECKOUT/native/include" ] && (cd "$CHECKOUT/native/include" && find . -type f -print0 \
               | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-16)
    build_module_dir "native/$name" "$d" "$bdir" "VGPU_FLIP_INCLUDE_SUM=$inc_sum"
    while IFS= read -r ko; do OWN_KOS+=("$ko"); done < <(find "$bdir" -maxdepth 2 -name '*.ko' | LC_ALL=C sort)
  done
  [ "${#OWN_KOS[@]}" -gt 0 ] || die "native modules built but no .ko found under $BUILD/native"
fi

# ---------------------------------------------------------------- initramfs
BASE_MODS=(virtio_pci 9pnet_virtio 9p vfio vfio_iommu_type1 mdev virtio_gpu)   # virtio_gpu: vm.sh --display2
ALL_KOS=("$BUILD/vkms/vkms.ko" "${SAMPLE_KOS[@]}" "${OWN_KOS[@]}")
want=("${BASE_MODS[@]}")
for ko in "${ALL_KOS[@]}"; do
  deps=$(modinfo -F depends "$ko" 2>/dev/null || true)
  IFS=, read -r -a arr <<<"$deps"
  for m in "${arr[@]}"; do [ -n "$m" ] && want+=("$m"); done
done

INIT_SRC="$RIG_DIR/init.sh"
[ -f "$INIT_SRC" ] || die "missing $INIT_SRC"
inputs_sum=$( {
  echo "${want[*]}"
  sha256sum "$INIT_SRC" /bin/busybox "${ALL_KOS[@]}"
  cat "$KDIR/.image-done" 2>/dev/null; stat -c %Y "$KDIR/.image-done"
} | sha256sum | cut -c1-32)
# named by its inputs, so concurrent runs with different module sets never swap it under each other
INITRD="$KDIR/initramfs-$inputs_sum.cpio.gz"
if [ ! -f "$INITRD" ]; then
  say "building initramfs (modules: ${want[*]} + vkms + ${SAMPLE_NAMES[*]} + ${#OWN_KOS[@]} of ours)"
  stage="$KDIR/.initramfs-stage"
  rm -rf "$stage" && mkdir -p "$stage"/{bin,sbin,dev,proc,sys,host,mnt/out,tmp,lib/modules/"$KREL"/extra}
  cp /bin/busybox "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  cp "$INIT_SRC" "$stage/init" && chmod 755 "$stage/init"
  declare -A seen=()
  for m in "${want[@]}"; do
    out=$(modprobe -d "$ROOT" -S "$KREL" --show-depends "$m" 2>&1) \
      || die "module $m not found in $KREL: $out"
    while read -r kind path _; do
      [ "$kind" = insmod ] || continue
      rel=${path#"$ROOT"/}
      [ -n "${seen[$rel]:-}" ] && continue
      seen[$rel]=1
      mkdir -p "$stage/$(dirname "$rel")"
      cp "$path" "$stage/$rel"
    done <<<"$out"
  done
  for ko in "${ALL_KOS[@]}"; do cp "$ko" "$stage/lib/modules/$KREL/extra/"; done
  for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "$ROOT/lib/modules/$KREL/$f" ] && cp "$ROOT/lib/modules/$KREL/$f" "$stage/lib/modules/$KREL/"
  done
  depmod -b "$stage" "$KREL"
  (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  # old ones: qemu reads the initramfs when it starts, so anything older than an hour is unused
  find "$KDIR" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -newer "$INITRD" -mmin +60 -delete 2>/dev/null || true
  rm -f "$KDIR/initramfs.cpio.gz"
  say "initramfs: $(find "$stage" -name '*.ko' | wc -l) modules, $(du -h "$INITRD" | cut -f1)"
  rm -rf "$stage"
fi

# ---------------------------------------------------------------- summary for vm.sh
own_names=()
for ko in "${OWN_KOS[@]}"; do own_names+=("$(basename "$ko" .ko)"); done
{
  printf 'ABI=%q\nKREL=%q\nKVER=%q\nKDIR=%q\nROOT=%q\n' "$ABI" "$KREL" "$KVER" "$KDIR" "$ROOT"
  printf 'VMLINUZ=%q\nINITRD=%q\nSRC=%q\nHDR_DIR=%q\n' "$KDIR/vmlinuz" "$INITRD" "$SRC" "$HDR_DIR"
  printf 'VKMS_KO=%q\n' "$BUILD/vkms/vkms.ko"
  printf 'OWN_MODULES=%q\n' "${own_names[*]}"
  printf 'SAMPLE_MODULES=%q\n' "${SAMPLE_NAMES[*]}"
} >"$KDIR/rig-$inputs_sum.env"
cp "$KDIR/rig-$inputs_sum.env" "$KDIR/rig.env.tmp" && mv "$KDIR/rig.env.tmp" "$KDIR/rig.env"
find "$KDIR" -maxdepth 1 -name 'rig-*.env' -mmin +60 -delete 2>/dev/null || true
say "ready: $KREL; modules of ours: ${own_names[*]:-none}"
echo "$KDIR/rig-$inputs_sum.env"
