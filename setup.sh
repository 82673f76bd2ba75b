#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for vgpu-flip: system packages (as root), the kernel headers
# matching Debian's current kernel (for building vkms and vgpu-sim), then npm ci (builds the
# native addon and the TypeScript). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '[setup] %s\n' "$*"; }

# systemd: systemd-analyze verifies the kiosk's unit file (test/host/kiosk-systemd-unit.test.ts; nothing is started)
# sway: the real Wayland compositor of the lease test (test/kernel/wayland-lease.test.ts; the rig's VM
# sees the host's packages over 9p)
# python3 and util-linux (setpriv): the kiosk control test's sd_notify receiver and its non-root clients
pkgs=(qemu-system-x86 busybox-static kmod cpio libdrm-dev pkg-config python3 make g++ xz-utils rsync patch wayland-protocols libwayland-dev sway util-linux systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# the kernel ABI the rig uses comes from the metapackage, never a fixed version
need_update=0
if [ "${#missing[@]}" -gt 0 ] || ! apt-cache depends linux-image-amd64 >/dev/null 2>&1 \
   || [ -z "$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -n1)" ]; then
  need_update=1
fi
if [ "$(id -u)" != 0 ]; then
  if [ "${#missing[@]}" -gt 0 ]; then
    say "missing packages: ${missing[*]}"
    say "run as root, or: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
else
  if [ "$need_update" = 1 ]; then
    say "apt-get update"
    apt-get update -q
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
fi

abi=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
if [ -z "$abi" ]; then say "cannot resolve the kernel ABI from linux-image-amd64 (apt-get update?)"; exit 1; fi
if [ ! -d "/usr/src/linux-headers-$abi" ]; then
  if [ "$(id -u)" != 0 ]; then say "missing kernel headers: sudo apt-get install -y linux-headers-$abi"; exit 1; fi
  say "installing linux-headers-$abi"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "linux-headers-$abi"
fi

if [ ! -f native/build/Release/vgpu_flip.node ] || [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm install (builds the native addon and the TypeScript)"
  # npm ci refuses this lockfile here: the registry serves no non-Linux rollup builds, so
  # their optional entries are missing from it; npm install uses the lockfile all the same
  npm install --no-audit --no-fund
else
  say "node_modules present; building TypeScript"
  npm run build --silent
fi
say "ready: kernel ABI $abi"
