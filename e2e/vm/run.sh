#!/usr/bin/env bash
# Runs a command in a throw-away QEMU guest on pure cgroup v2 and returns its exit status.
#
#   e2e/vm/run.sh CMD [ARG...]
#
# The guest boots Debian's stock kernel (e2e/vm/kernel.sh, cached) under TCG (this machine's
# /dev/kvm cannot run it) with `cgroup_no_v1=all`. Its root is the host's / (9p, read-only) under a
# tmpfs overlay, so the repository, the cargo target dir and every host tool are visible at their
# host paths; writes stay in the guest's RAM. PID 1 is the host's systemd with D-Bus
# (BERTH_VM_INIT=systemd, the default) or guest.sh itself (BERTH_VM_INIT=sh, a few seconds faster).
# CMD runs as root in the current directory with this shell's PATH, HOME, and BERTH_*, RUST_*,
# CARGO_* variables; its stdout and stderr arrive on this script's stdout. The host's
# 127.0.0.1:{5000,5443,5002} (the test registries) answer at the same address in the guest
# (QEMU's user-mode network maps 10.0.2.2 to the host's loopback; guest.sh NATs those ports).
# Code runs 20-40x slower than on the host: build here, run only what needs cgroup v2 there.
#
#   BERTH_VM_INIT     systemd | sh               BERTH_VM_MEM   MiB (2048)
#   BERTH_VM_CPUS     vCPUs (2)                  BERTH_VM_TIMEOUT  seconds before the guest is killed (1200)
#   BERTH_VM_CACHE    kernel cache (/var/cache/berth-vm)
#
# Exit status: CMD's; 125 if the guest did not boot or did not report one (its console log is printed).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${BERTH_VM_CACHE:-/var/cache/berth-vm}
INIT=${BERTH_VM_INIT:-systemd}
die() { echo "vm/run.sh: $*" >&2; exit 125; }
(($#)) || die "usage: run.sh CMD [ARG...]"
[[ $INIT == systemd || $INIT == sh ]] || die "BERTH_VM_INIT must be systemd or sh"
[[ $(id -u) == 0 ]] || die "must run as root (QEMU exports / over 9p)"

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "vm/run.sh: installing qemu-system-x86" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2 \
    || die "cannot install qemu-system-x86"
fi
kdir=$(BERTH_VM_CACHE=$CACHE "$HERE/kernel.sh" | tail -n1) || die "cannot prepare the guest kernel"
kver=$(basename "$kdir")

mkdir -p "$CACHE/runs"
xfer=$(mktemp -d "$CACHE/runs/run.XXXXXX")
[[ -n ${BERTH_VM_KEEP:-} ]] || trap 'rm -rf "$xfer"' EXIT
trap 'exit 143' INT TERM
cp "$HERE/guest.sh" "$xfer/guest.sh"
mkdir "$xfer/units"
{
  echo "cd $(printf %q "$PWD")"
  env | grep -E '^(PATH|HOME|BERTH_[A-Z0-9_]*|RUST_[A-Z0-9_]*|CARGO_[A-Z0-9_]*)=' | while IFS= read -r kv; do
    echo "export ${kv%%=*}=$(printf %q "${kv#*=}")"
  done
  printf '%q ' "$@"
  echo
} > "$xfer/cmd"
echo "5000 5443 5002" > "$xfer/ports"

cat > "$xfer/units/berth-vm.target" <<'UNIT'
[Unit]
Description=berth VM run
Requires=berth-vm.service
After=berth-vm.service
AllowIsolate=yes
UNIT
cat > "$xfer/units/berth-vm.service" <<'UNIT'
[Unit]
Description=berth VM command
Requires=dbus.socket
After=dbus.socket basic.target
[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/bin/sh /berth-vm/guest.sh run
UNIT

# Boot-time work the runs do not need (13 s of tmpfiles copy-ups over 9p alone) is masked.
for u in systemd-tmpfiles-setup systemd-journal-flush systemd-timesyncd systemd-update-utmp \
  systemd-random-seed systemd-sysusers; do
  ln -s /dev/null "$xfer/units/$u.service"
done

append="console=ttyS1 quiet panic=-1 mitigations=off no_timer_check cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
append+=" berth_vm.init=$INIT berth_vm.modules=$kdir/pkg/lib/modules/$kver"
append+=" systemd.unit=berth-vm.target systemd.show_status=0 systemd.log_target=console"
set +e
timeout --foreground -k 10 "${BERTH_VM_TIMEOUT:-1200}" qemu-system-x86_64 \
  -machine pc -accel tcg,thread=multi -cpu max -smp "${BERTH_VM_CPUS:-2}" -m "${BERTH_VM_MEM:-2048}" \
  -nodefaults -no-reboot -display none -no-user-config \
  -kernel "$kdir/vmlinux" -initrd "$kdir/initramfs.cpio.gz" -append "$append" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=xfer,path="$xfer",security_model=none \
  -device virtio-9p-pci,fsdev=xfer,mount_tag=xfer \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
  -chardev stdio,id=out,signal=off -serial chardev:out \
  -serial file:"$xfer/console.log" </dev/null
qrc=$?
set -e
if [[ ! -s $xfer/rc ]]; then
  echo "vm/run.sh: the guest reported no exit status (qemu: $qrc); its console:" >&2
  tail -n 60 "$xfer/console.log" >&2 || true
  exit 125
fi
exit "$(cat "$xfer/rc")"
