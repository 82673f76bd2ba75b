#!/usr/bin/env bash
# Run one command inside the real-kernel test rig: Debian's kernel under QEMU (TCG) with vkms,
# VFIO/mdev and the project's own modules loaded, the host's root shared read-only, and the
# checkout as working directory. Boots once per call; output streams live; exits with the
# command's exit status.
#
#   bash test/rig/vm.sh [options] [--] <command...>       (or: npm run vm -- [options] [--] <command...>)
#
# Options:
#   --module PATH.ko[:"PARAMS"]  load an extra out-of-tree module (after ours); repeatable
#   --param MODULE.KEY=VALUE     a parameter for one of our modules (or vkms); repeatable
#   --mdev TYPE[:UUID]           create an mdev of TYPE (e.g. vgpu_sim-small); repeatable;
#                                UUIDs are printed and given to the command as $VGPU_FLIP_MDEVS
#   --sample-drivers             also load the kernel's sample vGPU drivers mbochs and mdpy
#                                (samples/vfio-mdev, built by prepare.sh); their parameters
#                                via --param (mbochs.count=MB of video memory for all its
#                                instances, default 256 -- the parameter is named count, not
#                                mem; mdpy.count=max instances, default 4)
#   --display2                   a second DRM display: QEMU's virtio-gpu with 2 heads (1024x768),
#                                driven by the guest's virtio_gpu (loaded after vkms, so vkms
#                                stays card0); both heads are forced connected. Its card node
#                                is given to the command as $VGPU_FLIP_DISPLAY2 (e.g.
#                                /dev/dri/card1). What each head scans out can be read back
#                                from inside the guest through the job folder: a host-side
#                                service (test/rig/screendump-service.mjs) runs QMP screendump
#                                on request (see test/kernel/display2-helpers.ts)
#   --no-vkms                    do not load vkms
#   --no-fbdev                   no fbdev emulation: vkms starts with no mode set (by default
#                                fbcon lights the CRTC at 1024x768 like a real host console)
#   --check-dmesg                after the command: remove mdevs, unload our modules and vkms,
#                                fail if the kernel log has WARNING/BUG/Oops/KASAN/Call Trace/refcount
#   --timeout SECONDS            kill the VM after SECONDS (default $VGPU_FLIP_VM_TIMEOUT or 1800)
#   --keep                       never prune this job's folder .vm-out/rig/<job>/ (dmesg.txt,
#                                status, ...); otherwise the 10 newest finished jobs are kept
#
# Output: the command's stdout and stderr both arrive on stdout (one serial console); the rig's
# own lines ([rig] on the host, [vm] from the guest set-up) go to stderr.
# Inside the VM: HOME=/tmp (tmpfs), PATH starts with <checkout>/bin and node_modules/.bin,
# <checkout>/.vm-out is writable (it is the host's folder), VGPU_FLIP_IN_VM=1,
# VGPU_FLIP_MDEVS="uuid ...", VGPU_FLIP_JOB_DIR=<checkout>/.vm-out/rig/<job>, and with
# --display2 VGPU_FLIP_DISPLAY2=/dev/dri/cardN (the set-up fails when no card is driven by virtio_gpu).
set -euo pipefail

say() { printf '[rig] %s\n' "$*" >&2; }
die() { printf '[rig] ERROR: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$RIG_DIR/../.." && pwd)
CALLER_CWD=${INIT_CWD:-$PWD}   # npm run changes cwd to the package root; INIT_CWD is where it was called

EXTRA_MODS=(); PARAMS=(); MDEVS=(); VKMS=1; SAMPLES=0; DISPLAY2=0; CHECK_DMESG=0; KEEP=0; FBDEV_ARG=
TIMEOUT=${VGPU_FLIP_VM_TIMEOUT:-1800}
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --module) [ $# -ge 2 ] || die "--module needs PATH.ko[:PARAMS]"; EXTRA_MODS+=("$2"); shift 2 ;;
    --module=*) EXTRA_MODS+=("${1#*=}"); shift ;;
    --param) [ $# -ge 2 ] || die "--param needs MODULE.KEY=VALUE"; PARAMS+=("$2"); shift 2 ;;
    --param=*) PARAMS+=("${1#*=}"); shift ;;
    --mdev) [ $# -ge 2 ] || die "--mdev needs TYPE[:UUID]"; MDEVS+=("$2"); shift 2 ;;
    --mdev=*) MDEVS+=("${1#*=}"); shift ;;
    --sample-drivers) SAMPLES=1; shift ;;
    --display2) DISPLAY2=1; shift ;;
    --no-vkms) VKMS=0; shift ;;
    --no-fbdev) FBDEV_ARG="drm_kms_helper.fbdev_emulation=0 "; shift ;;
    --check-dmesg) CHECK_DMESG=1; shift ;;
    --timeout) [ $# -ge 2 ] || die "--timeout needs SECONDS"; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    --*) die "unknown option $1 (put the command after --; see --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { say "no command given"; usage; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -gt 0 ] || die "--timeout wants a number of seconds, got '$TIMEOUT'"

# ---------------------------------------------------------------- kernel, modules, initramfs
envfile=$(bash "$RIG_DIR/prepare.sh" | tail -n1) || die "preparing the rig failed (see above)"
# shellcheck disable=SC1090
. "$envfile"
read -r -a OWN <<<"${OWN_MODULES:-}"
SAMPLE=()
if [ "$SAMPLES" = 1 ]; then
  read -r -a SAMPLE <<<"${SAMPLE_MODULES:-}"
  [ "${#SAMPLE[@]}" -gt 0 ] || die "--sample-drivers: the prepared rig ($envfile) has no sample drivers (SAMPLE_MODULES)"
fi

# ---------------------------------------------------------------- the job folder
OUT="$CHECKOUT/.vm-out"
mkdir -p "$OUT/rig"
JOB="$(date +%Y%m%d-%H%M%S)-$$"
J="$OUT/rig/$JOB"
mkdir -p "$J"
ln -sfn "$JOB" "$OUT/rig/last"
# prune finished jobs, keeping the 10 newest
ls -1dt "$OUT"/rig/2*/ 2>/dev/null | tail -n +11 | while read -r d; do
  [ -f "$d/done" ] && [ ! -f "$d/keep" ] && rm -rf "$d"
done || true

q() { printf '%q' "$1"; }   # quote for bash
sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }   # quote for busybox sh

# module parameters: --param mod.key=value
declare -A MOD_PARAMS=()
for p in "${PARAMS[@]}"; do
  [[ "$p" =~ ^([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)=(.*)$ ]] || die "--param '$p' is not MODULE.KEY=VALUE"
  m=${BASH_REMATCH[1]//-/_}
  known=0; for o in "${OWN[@]}" "${SAMPLE[@]}" vkms; do [ "$o" = "$m" ] && known=1; done
  [ "$known" = 1 ] || die "--param $p: '$m' is not one of the rig's modules (${OWN[*]:-none built} ${SAMPLE[*]:+${SAMPLE[*]} }vkms; mbochs/mdpy need --sample-drivers)"
  MOD_PARAMS[$m]+=" $(sq "${BASH_REMATCH[2]}=${BASH_REMATCH[3]}")"
done

UNLOAD=()
{
  echo "# generated by test/rig/vm.sh for job $JOB"
  if [ "$DISPLAY2" = 1 ]; then
    cat <<'EOS'
display2_setup() { # the virtio-gpu card: its node into $J/display2, every connector forced on
  d2=
  for c in /sys/class/drm/card*; do
    case "${c##*/}" in *-*) continue ;; esac
    # the card's device is the virtio-pci function; virtio_gpu drives its virtio child
    for v in "$c"/device/virtio*/driver; do
      [ "$(basename "$(readlink "$v" 2>/dev/null)")" = virtio_gpu ] && { d2=${c##*/}; break 2; }
    done
  done
  [ -n "$d2" ] || { say "ERROR: virtio_gpu loaded but no DRM card is driven by it (ls /sys/class/drm: $(ls /sys/class/drm | tr '\n' ' '))"; return 1; }
  if [ -d /sys/module/vkms ] && [ "$d2" = card0 ]; then say "ERROR: virtio-gpu is card0, vkms must be"; return 1; fi
  for s in /sys/class/drm/"$d2"-*/status; do
    [ "$(cat "$s")" = connected ] || echo on >"$s" || { say "ERROR: cannot force $s on"; return 1; }
  done
  echo "/dev/dri/$d2" >"$J/display2"
  st=; for s in /sys/class/drm/"$d2"-*/status; do n=${s%/status}; st="$st ${n##*/}=$(cat "$s")"; done
  say "display2: /dev/dri/$d2 (virtio-gpu):$st"
}
EOS
  fi
  if [ "$VKMS" = 1 ]; then
    echo "load_mod vkms enable_cursor=1 enable_writeback=1 enable_overlay=1${MOD_PARAMS[vkms]:-} || return 1"
  fi
  if [ "$DISPLAY2" = 1 ]; then
    # after vkms: DRM minors are handed out in probe order, so vkms is card0 and virtio-gpu the
    # next one. QEMU enables only head 0 without a UI (no ui_info from -display none), so the
    # other heads are disconnected: force every virtio-gpu connector on (their modes come from
    # QEMU's EDID) and reprobe.
    echo "load_mod virtio_gpu || return 1"
    echo "display2_setup || return 1"
  fi
  echo "load_mod vfio || return 1"
  echo "load_mod vfio_iommu_type1 || return 1"
  echo "load_mod mdev || return 1"
  for m in "${OWN[@]}"; do
    echo "load_mod $m${MOD_PARAMS[$m]:-} || return 1"
  done
  for m in "${SAMPLE[@]}"; do
    echo "load_mod $m${MOD_PARAMS[$m]:-} || return 1"
  done
  n=0
  for spec in "${EXTRA_MODS[@]}"; do
    path=${spec%%:*}; params=; [ "$path" != "$spec" ] && params=${spec#*:}
    case "$path" in /*) ;; *) path="$CALLER_CWD/$path" ;; esac
    [ -f "$path" ] || die "--module: no such file $path"
    # its dependencies from Debian's module tree, loaded from the host share
    deps=$(modinfo -F depends "$path" 2>/dev/null || true)
    IFS=, read -r -a darr <<<"$deps"
    for d in "${darr[@]}"; do
      [ -n "$d" ] || continue
      while read -r kind dp _; do
        [ "$kind" = insmod ] || continue
        dn=$(basename "$dp" .ko); dn=${dn//-/_}
        echo "[ -d /sys/module/$dn ] || load_ko $(sq "/host$dp") || return 1"
      done < <(modprobe -d "$ROOT" -S "$KREL" --show-depends "$d" 2>/dev/null || echo "missing")
    done
    n=$((n + 1))
    mkdir -p "$J/modules"
    cp "$path" "$J/modules/$n-$(basename "$path")"
    echo "load_ko $(sq "/host$J/modules/$n-$(basename "$path")") $params || return 1"
    name=$(modinfo -F name "$path" 2>/dev/null || basename "$path" .ko)
    UNLOAD=("${name//-/_}" "${UNLOAD[@]}")
  done
  for spec in "${MDEVS[@]}"; do
    t=${spec%%:*}; u=; [ "$t" != "$spec" ] && u=${spec#*:}
    [ -n "$u" ] || u=$(cat /proc/sys/kernel/random/uuid)
    [[ "$u" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] \
      || die "--mdev $spec: '$u' is not a UUID"
    echo "mdev_create $(sq "$t") $u || return 1"
  done
} >"$J/setup.sh"
for ((i = ${#SAMPLE[@]} - 1; i >= 0; i--)); do UNLOAD+=("${SAMPLE[$i]}"); done
for ((i = ${#OWN[@]} - 1; i >= 0; i--)); do UNLOAD+=("${OWN[$i]}"); done
[ "$VKMS" = 1 ] && UNLOAD+=(vkms)
[ "$DISPLAY2" = 1 ] && UNLOAD+=(virtio_gpu)

# the shared root is read-only: a few tool caches inside the checkout get a tmpfs in the guest
# (vite bundles vitest.config.ts into node_modules/.vite-temp; vitest keeps results in .vite)
: >"$J/tmpfs-dirs"
if [ -d "$CHECKOUT/node_modules" ]; then
  for d in node_modules/.vite-temp node_modules/.vite node_modules/.cache; do
    mkdir -p "$CHECKOUT/$d" 2>/dev/null && echo "$CHECKOUT/$d" >>"$J/tmpfs-dirs"
  done
fi

COLS=; ROWS=; CONSOLE_TTY=0
if [ -t 1 ]; then CONSOLE_TTY=1; COLS=$(tput cols 2>/dev/null || echo 120); ROWS=$(tput lines 2>/dev/null || echo 40); fi
{
  printf 'CHECKOUT=%s\n' "$(sq "$CHECKOUT")"
  printf 'CHECK_DMESG=%s\nCONSOLE_TTY=%s\nCOLS=%s\nROWS=%s\n' "$CHECK_DMESG" "$CONSOLE_TTY" "$COLS" "$ROWS"
  printf 'UNLOAD_MODULES=%s\n' "$(sq "${UNLOAD[*]}")"
} >"$J/job.env"

# the command, run by bash in the chroot with a clean environment
{
  echo '# generated by test/rig/vm.sh'
  echo "export HOME=/tmp TMPDIR=/tmp XDG_CACHE_HOME=/tmp/.cache npm_config_cache=/tmp/.npm npm_config_update_notifier=false"
  echo "export PATH=$(q "$CHECKOUT/bin:$CHECKOUT/node_modules/.bin:${PATH:-/usr/local/bin:/usr/bin:/bin}")"
  echo "export TERM=$(q "${TERM:-dumb}") LANG=$(q "${LANG:-C.UTF-8}")"
  echo "export VGPU_FLIP_IN_VM=1 VGPU_FLIP_JOB_DIR=$(q "$J") VGPU_FLIP_KERNEL=$(q "$KREL") VGPU_FLIP_RIG_MODULES=$(q "${OWN[*]}") VGPU_FLIP_RIG_SAMPLES=$(q "${SAMPLE[*]}")"
  echo "export VGPU_FLIP_MDEVS=\"\$(cut -d' ' -f2 $(q "$J/mdevs") | tr '\n' ' ' | sed 's/ \$//')\""
  if [ "$DISPLAY2" = 1 ]; then echo "export VGPU_FLIP_DISPLAY2=\"\$(cat $(q "$J/display2") 2>/dev/null)\""; fi
  for v in CI NO_COLOR FORCE_COLOR DEBUG $(compgen -e | grep -E '^(VGPU_FLIP_|VITEST_)' || true); do
    case "$v" in VGPU_FLIP_IN_VM|VGPU_FLIP_JOB_DIR|VGPU_FLIP_MDEVS|VGPU_FLIP_DISPLAY2|VGPU_FLIP_KERNEL|VGPU_FLIP_RIG_MODULES|VGPU_FLIP_RIG_SAMPLES|VGPU_FLIP_VM_RESULT) continue ;; esac
    [ -n "${!v+x}" ] && echo "export $v=$(q "${!v}")"
  done
  echo "cd $(q "$CHECKOUT") || exit 126"
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} >"$J/cmd.sh"

# ---------------------------------------------------------------- boot
CACHE_MODE=${VGPU_FLIP_9P_CACHE:-loose}
# trace_event: the syscall tracepoint the ioctl-counting tests read (test/kernel/ioctl-trace.ts),
# enabled by the kernel before the second CPU starts. Enabling an event (or a kprobe) at run
# time patches kernel text on live CPUs, which under TCG froze the VM (issue 11): never done.
TRACE_ARGS="trace_event=syscalls:sys_enter_ioctl trace_buf_size=4M"
APPEND="console=ttyS0 quiet loglevel=3 panic=1 softlockup_panic=1 softlockup_all_cpu_backtrace=1 mitigations=off $TRACE_ARGS ${VGPU_FLIP_VM_APPEND:+$VGPU_FLIP_VM_APPEND }${FBDEV_ARG}vgpuflip.out=$(printf '%s' "$OUT" | base64 -w0) vgpuflip.job=$JOB vgpuflip.cache=$CACHE_MODE"
# qboot (from qemu-system-data) boots straight into the kernel and prints nothing; SeaBIOS otherwise
BIOS=(); [ -f /usr/share/qemu/qboot.rom ] && BIOS=(-bios /usr/share/qemu/qboot.rom)
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot -nic none -vga none
      "${BIOS[@]}"
      -kernel "$VMLINUZ" -initrd "$INITRD" -append "$APPEND"
      -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
      -virtfs "local,path=$OUT,mount_tag=out,security_model=none,multidevs=remap")
QMP_DIR=
if [ "$DISPLAY2" = 1 ]; then
  command -v node >/dev/null || die "--display2 needs node on the host (the screendump service)"
  # the socket outside the job folder: unix socket paths are limited to 107 bytes
  QMP_DIR=$(mktemp -d /tmp/vgpu-flip-qmp.XXXXXX)
  mkdir -p "$J/screendump"
  QEMU+=(-device virtio-gpu-pci,id=display2,max_outputs=2,xres=1024,yres=768
         -qmp "unix:$QMP_DIR/qmp.sock,server=on,wait=off")
fi
say "booting $KREL (job .vm-out/rig/$JOB, timeout ${TIMEOUT}s): $*"
t0=$(date +%s)
qpid=
spid=
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  [ -n "${wpid:-}" ] && kill "$wpid" 2>/dev/null || true
  [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null || true
  [ -n "${QMP_DIR:-}" ] && rm -rf "$QMP_DIR" || true
}
trap 'cleanup; say "interrupted"; exit 130' INT TERM
trap cleanup EXIT
# the console: drop carriage returns and the kernel's own "Power down" line; the guest set-up's
# "[vm] ..." lines go to stderr, so the command's output alone is on stdout (e.g.
# `npm run -s vm -- vgpu-flip inspect --json | jq`); stream the rest
exec {confd}> >(exec sed -u -e 's/\r$//' -e '/^\[ *[0-9.]*\] reboot: Power down$/d' -e '/^\[vm\] /{w /dev/stderr' -e 'd;}')
fpid=$!
"${QEMU[@]}" </dev/null >&"$confd" 2>&1 &
qpid=$!
if [ "$DISPLAY2" = 1 ]; then
  # the screendump service: QMP screendump of a virtio-gpu head on a request file from the guest
  # (test/rig/screendump-service.mjs); its log is the job folder's screendump/service.log
  node "$RIG_DIR/screendump-service.mjs" --qmp "$QMP_DIR/qmp.sock" --dir "$J/screendump" --device display2 --heads 2 \
    </dev/null >>"$J/screendump/service.log" 2>&1 {confd}>&- &
  spid=$!
fi
# watchdog: holds no copy of the console pipe, and leaves no sleep behind when it is stopped
(
  exec {confd}>&- </dev/null >/dev/null 2>&1
  sleep "$TIMEOUT" & s=$!
  trap 'kill $s 2>/dev/null; exit 0' TERM
  wait "$s"
  touch "$J/timed-out"
  kill "$qpid" 2>/dev/null; sleep 3; kill -9 "$qpid" 2>/dev/null
) &
wpid=$!
set +e
wait "$qpid"; qrc=$?
set -e
qpid=
kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; wpid=
if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; spid=; fi
[ -n "$QMP_DIR" ] && rm -rf "$QMP_DIR"; QMP_DIR=
exec {confd}>&-
wait "$fpid" 2>/dev/null || true
dt=$(( $(date +%s) - t0 ))

# a machine-readable summary for callers (test/run-all.mjs): VGPU_FLIP_VM_RESULT=<file>
result() { # status cmd_status dmesg(ok|bad|unchecked) reason
  [ -n "${VGPU_FLIP_VM_RESULT:-}" ] || return 0
  printf '{"status":%s,"commandStatus":%s,"dmesg":"%s","reason":"%s","jobDir":"%s","seconds":%s}\n' \
    "$1" "${2:-null}" "$3" "$4" "$J" "$dt" >"$VGPU_FLIP_VM_RESULT"
}
if [ -f "$J/timed-out" ]; then
  result 124 null unchecked timeout
  say "TIMEOUT: the VM did not finish within ${TIMEOUT}s; qemu was killed (kernel log so far: none saved; rerun with a larger --timeout?)"
  exit 124
fi
if [ ! -f "$J/status" ]; then
  result 125 null unchecked no-status
  say "ERROR: the guest ended after ${dt}s without reporting a status (qemu exit $qrc): kernel panic, crash or a failed boot; see the console output above (remove 'quiet' to see more: VGPU_FLIP_VM_VERBOSE is not implemented, edit APPEND in test/rig/vm.sh)"
  exit 125
fi
rc=$(cat "$J/status")
[[ "$rc" =~ ^[0-9]+$ ]] || rc=125
if [ "$rc" = 125 ] && [ ! -f "$J/cmd-status" ]; then
  say "ERROR: the guest could not set up the run (see the [vm] lines above); kernel log: $J/dmesg.txt"
  KEEP=1
fi
if [ "$CHECK_DMESG" = 1 ]; then
  if [ -s "$J/dmesg-bad.txt" ]; then
    say "dmesg check FAILED: the kernel log has warnings/bugs or modules did not unload:"
    sed 's/^/[rig]   /' "$J/dmesg-bad.txt" | head -n 40 >&2
    first=$(grep -n -m1 -E 'WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|refcount:|general protection|UBSAN' "$J/dmesg.txt" | cut -d: -f1 || true)
    if [ -n "$first" ]; then
      say "the first report in context:"
      sed -n "$((first > 3 ? first - 3 : 1)),$((first + 30))p" "$J/dmesg.txt" | sed 's/^/[rig]   | /' >&2
    fi
    say "full kernel log kept: $J/dmesg.txt"
    KEEP=1
    [ "$rc" = 0 ] && rc=3
  else
    say "dmesg check passed (modules unloaded: ${UNLOAD[*]:-none})"
  fi
fi
cmd_rc=$(cat "$J/cmd-status" 2>/dev/null || echo null)
dm=unchecked; [ "$CHECK_DMESG" = 1 ] && { dm=ok; [ -s "$J/dmesg-bad.txt" ] && dm=bad; }
reason=ok; [ "$cmd_rc" = null ] && reason=setup-failed
result "$rc" "$cmd_rc" "$dm" "$reason"
say "exit status $rc after ${dt}s"
cp "$J/dmesg.txt" "$OUT/rig/last-dmesg.txt" 2>/dev/null || true
[ "$KEEP" = 1 ] && touch "$J/keep"
exit "$rc"
