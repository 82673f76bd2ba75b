#!/bin/sh
# /init of the test rig's initramfs (busybox sh, PID 1 in the guest). Generic: everything
# specific to one run comes from the job folder that test/rig/vm.sh writes on the host:
#   <checkout>/.vm-out/rig/<job>/job.env   variables (CHECKOUT, CHECK_DMESG, ...)
#   .../setup.sh   module loading and mdev creation (sourced here, busybox)
#   .../cmd.sh     the command, run with bash inside the chroot of the host's root
# and results go back into the same folder: status, dmesg.txt, dmesg-bad.txt, mdevs, done.
# The kernel command line names the job: vgpuflip.out=<base64 host path of .vm-out> vgpuflip.job=<id>
export PATH=/bin:/sbin
/bin/busybox --install -s /bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "[vm] $*"; }
J=
finish() { # rc: report and power off (never return: PID 1 must not exit)
  if [ -n "$J" ] && [ -d "$J" ]; then
    echo "$1" >"$J/status.tmp" && mv "$J/status.tmp" "$J/status"
    echo done >"$J/done"
  fi
  sync
  [ -n "$OUTDIR" ] && umount "/host$OUTDIR" 2>/dev/null
  poweroff -f
  sleep 5
  echo o >/proc/sysrq-trigger
}
die() { say "ERROR: $*"; finish 125; }

for a in $(cat /proc/cmdline); do
  case "$a" in
    vgpuflip.out=*) OUT_B64=${a#*=} ;;
    vgpuflip.job=*) JOB=${a#*=} ;;
    vgpuflip.cache=*) HOST_CACHE=${a#*=} ;;
  esac
done
OUTDIR=$(echo "$OUT_B64" | base64 -d)
[ -n "$OUTDIR" ] && [ -n "$JOB" ] || die "kernel command line lacks vgpuflip.out/vgpuflip.job"

for m in virtio_pci 9pnet_virtio 9p; do modprobe "$m" || die "modprobe $m failed"; done
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,ro,cache=${HOST_CACHE:-none}" host /host \
  || die "mounting the host's root (9p tag host) failed"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "/host$OUTDIR" \
  || die "mounting the writable share (9p tag out) on $OUTDIR failed"
J="/host$OUTDIR/rig/$JOB"
[ -f "$J/job.env" ] || die "no job file $J/job.env"
. "$J/job.env"

# the chroot: the host's root read-only, with the guest's own kernel filesystems and a tmpfs /tmp
mount -t proc proc /host/proc || die "mount proc"
mount -t sysfs sysfs /host/sys || die "mount sysfs"
mount -t debugfs debugfs /host/sys/kernel/debug || die "mount debugfs"
# the syscall tracepoint enabled at boot (vm.sh trace_event=) records nothing until a test asks
# (test/kernel/ioctl-trace.ts turns tracing_on on and sets the filter; neither patches kernel text)
echo 0 >/host/sys/kernel/debug/tracing/tracing_on 2>/dev/null
mount -t devtmpfs devtmpfs /host/dev || die "mount devtmpfs"
mount -t devpts devpts /host/dev/pts 2>/dev/null
# a checkout under a folder that gets a tmpfs (/tmp, /run, /var/tmp, /dev/shm): keep it (with
# the writable share mounted inside it) visible by moving it over the new tmpfs
KEEP_CHECKOUT=
case "$CHECKOUT/" in
  /tmp/*|/run/*|/var/tmp/*|/dev/shm/*)
    mkdir -p /keep && mount -o rbind "/host$CHECKOUT" /keep && KEEP_CHECKOUT=1 \
      || die "cannot keep the checkout $CHECKOUT visible over the guest's tmpfs" ;;
esac
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm 2>/dev/null
mount -t tmpfs -o mode=1777,size=1024m tmpfs /host/tmp || die "mount tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run 2>/dev/null
mount -t tmpfs -o mode=755 tmpfs /host/var/tmp 2>/dev/null
if [ -n "$KEEP_CHECKOUT" ]; then
  mkdir -p "/host$CHECKOUT" && mount -o move /keep "/host$CHECKOUT" \
    || die "cannot move the checkout $CHECKOUT back over the guest's tmpfs"
fi
while IFS= read -r d; do
  [ -n "$d" ] && [ -d "/host$d" ] && mount -t tmpfs -o mode=755 tmpfs "/host$d"
done <"$J/tmpfs-dirs"
# the guest's own /sys/kernel/debug (outside the chroot too, for the dmesg check helpers)
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

[ "${CONSOLE_TTY:-0}" = 1 ] && [ -n "$COLS" ] && stty -F /dev/console cols "$COLS" rows "${ROWS:-24}" 2>/dev/null

# helpers for setup.sh
load_mod() { # name [params...]: modprobe from the initramfs
  modprobe "$@" || { say "ERROR: modprobe $* failed; dmesg tail:"; dmesg | tail -n 20; return 1; }
}
load_ko() { # guest-path [params...]: insmod a module file (from the host share)
  insmod "$@" || { say "ERROR: insmod $* failed; dmesg tail:"; dmesg | tail -n 20; return 1; }
}
mdev_create() { # type uuid
  t=$1 u=$2 found=
  for p in /sys/class/mdev_bus/*; do
    [ -d "$p/mdev_supported_types" ] || continue
    for td in "$p"/mdev_supported_types/*; do
      n=$(basename "$td")
      if [ "$n" = "$t" ] || [ "${n#*-}" = "$t" ]; then found=$td; break 2; fi
    done
  done
  if [ -z "$found" ]; then
    say "ERROR: no mdev type '$t' under /sys/class/mdev_bus/*/mdev_supported_types; known:"
    ls -d /sys/class/mdev_bus/*/mdev_supported_types/* 2>/dev/null | sed 's/^/[vm]   /'
    return 1
  fi
  echo "$u" >"$found/create" || { say "ERROR: creating mdev $u of $found failed"; dmesg | tail -n 10; return 1; }
  grp=$(basename "$(readlink "/sys/bus/mdev/devices/$u/iommu_group")")
  say "mdev $(basename "$found") $u (parent $(basename "$(dirname "$(dirname "$found")")"), iommu group $grp)"
  echo "$(basename "$found") $u $grp" >>"$J/mdevs"
}

: >"$J/mdevs"
. "$J/setup.sh" || die "setting up the guest failed (modules/mdev, see above)"

# a live view for when a command hangs (a test blocked in the kernel never reaches the end):
# every 20 s the kernel log, every process' state and wait channel, and the kernel stacks of
# those in D state, into the job folder on the host (live-*.txt)
echo 60 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
# Backtraces reach the serial console: the kernel prints them (soft lockup, hung task, sysrq,
# WARN) at the default message level, which loglevel=3 hides; give the default level 2 (shown)
# while every message with a level of its own (pr_info, pr_warn, DRM_ERROR) stays as quiet.
echo "3 2 1 7" >/proc/sys/kernel/printk 2>/dev/null
# A test process whose threads keep the same kernel stacks for a minute (outside the idle
# waits) is hung: the kernel's own dumps of every CPU's backtrace and of the blocked tasks
# (sysrq l, w) go to the serial console, which reaches the host through QEMU's stdout even when
# the 9p share or the CPU is the problem. Once per job. The loop runs at nice -20.
( renice -n -20 -p $$ >/dev/null 2>&1
  prev=''; same=0; dumped=0
  while sleep 20; do
    dmesg 2>/dev/null | tail -n 300 >"$J/live-dmesg.tmp" && mv -f "$J/live-dmesg.tmp" "$J/live-dmesg.txt"
    for p in /proc/[0-9]*; do
      printf '%s %s %s %s\n' "${p#/proc/}" "$(sed 's/.*) //' "$p/stat" 2>/dev/null | cut -d' ' -f1)" "$(cat "$p/wchan" 2>/dev/null)" "$(cat "$p/comm" 2>/dev/null)"
    done >"$J/live-ps.tmp" 2>/dev/null && mv -f "$J/live-ps.tmp" "$J/live-ps.txt"
    # who holds each vgpu-sim instance lock (read without taking it), then the kernel stack of
    # every thread of node and sh processes (a lock holder may be a helper thread) and of any
    # other thread sleeping outside the usual idle waits. Names come from /proc/PID/comm, never
    # cmdline: reading cmdline takes the process' mmap_lock, which a hung process may hold (the
    # live view then hangs with it). Written whole, then renamed: a job killed mid-loop keeps
    # the previous complete snapshot.
    {
      for l in /host/sys/kernel/debug/vgpu_sim/*/lock; do [ -r "$l" ] && echo "lock ${l%/lock}: $(cat "$l")"; done
      for t in /proc/[0-9]*/task/[0-9]*; do
        w=$(cat "$t/wchan" 2>/dev/null)
        st=$(sed 's/.*) //' "$t/stat" 2>/dev/null | cut -d' ' -f1)
        c=$(cat "${t%/task/*}/comm" 2>/dev/null)
        case "$c" in node|sh|bash|vitest|npm*) ;; *)
          case "$w" in 0|''|do_epoll_wait|do_wait|pipe_read|futex_wait_queue|worker_thread|smpboot_thread_fn|kthreadd|rescuer_thread|do_sys_poll|do_select|hrtimer_nanosleep|do_nanosleep|kthread_worker_fn|rcu_tasks_one_gp|rcu_gp_fqs_loop|rcu_gp_kthread|devtmpfs_work_loop|kauditd_thread|watchdog|oom_reaper|kcompactd|ksm_scan_thread|khugepaged|kswapd) [ "$st" = D ] || continue ;; esac ;;
        esac
        echo "== $t $st $w $c"
        cat "$t/stack" 2>/dev/null
      done
    } >/live-stacks.tmp 2>/dev/null
    mv -f /live-stacks.tmp "$J/live-stacks.txt" 2>/dev/null
    sig=$(for t in /proc/[0-9]*/task/[0-9]*; do
            case "$(cat "${t%/task/*}/comm" 2>/dev/null)" in node) ;; *) continue ;; esac
            k=$(cat "$t/stack" 2>/dev/null | head -n 3 | tr -d '\n')
            case "$k" in *do_epoll_wait*|*futex_wait*|'') ;; *) echo "$t $k" ;; esac
          done)
    if [ -n "$sig" ] && [ "$sig" = "$prev" ]; then same=$((same + 1)); else same=0; fi
    prev=$sig
    if [ "$same" -ge 3 ] && [ "$dumped" = 0 ]; then
      dumped=1
      echo "[rig] a test thread has kept the same kernel stack for 60 s: sysrq backtraces follow" >/dev/console
      echo "$sig" >/dev/console
      echo l >/proc/sysrq-trigger; echo w >/proc/sysrq-trigger
    fi
  done ) &
live_pid=$!

# run the command in the chroot
set -o pipefail
if [ "${CONSOLE_TTY:-0}" = 1 ]; then
  chroot /host /usr/bin/env -i /bin/bash "$OUTDIR/rig/$JOB/cmd.sh" </dev/null
else
  chroot /host /usr/bin/env -i /bin/bash "$OUTDIR/rig/$JOB/cmd.sh" </dev/null 2>&1 | cat
fi
rc=$?
set +o pipefail
echo "$rc" >"$J/cmd-status"
kill "$live_pid" 2>/dev/null

# stop whatever the command left behind, so modules can be unloaded
kill -TERM -1 2>/dev/null; sleep 0.2; kill -KILL -1 2>/dev/null

if [ "${CHECK_DMESG:-0}" = 1 ]; then
  : >"$J/teardown-bad.txt"
  for u in $(cut -d' ' -f2 "$J/mdevs"); do
    [ -e "/sys/bus/mdev/devices/$u/remove" ] && { echo 1 >"/sys/bus/mdev/devices/$u/remove" \
      || echo "removing mdev $u failed" >>"$J/teardown-bad.txt"; }
  done
  for m in $UNLOAD_MODULES; do
    [ -d "/sys/module/$m" ] || continue
    rmmod "$m" 2>>"$J/teardown-bad.txt" || echo "rmmod $m failed (still in use: refcount $(cat /sys/module/$m/refcnt 2>/dev/null))" >>"$J/teardown-bad.txt"
  done
fi
dmesg >"$J/dmesg.txt" 2>&1
if [ "${CHECK_DMESG:-0}" = 1 ]; then
  grep -E 'WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|refcount:|general protection|UBSAN|list_(add|del) corruption' \
    "$J/dmesg.txt" >"$J/dmesg-bad.txt"
  cat "$J/teardown-bad.txt" >>"$J/dmesg-bad.txt"
fi
finish "$rc"
