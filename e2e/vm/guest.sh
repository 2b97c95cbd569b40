#!/bin/sh
# The guest side of e2e/vm/run.sh, run from the exchange directory /berth-vm.
#   guest.sh boot   PID 1 without systemd: mount the API filesystems, run, power off
#   guest.sh run    (systemd's berth-vm.service, or boot) run /berth-vm/cmd with its output on
#                   ttyS0, its exit status into /berth-vm/rc, then power off
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mount_api() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs tmpfs /dev/shm
  mount -t mqueue mqueue /dev/mqueue
  mount -t tmpfs -o mode=755 tmpfs /run
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
  hostname berth-vm
}

# The user-mode network: QEMU maps 10.0.2.2 to the host's loopback (one host connection per
# guest connection; guestfwd would share one). NAT here makes the test registries answer at
# 127.0.0.1:<port> like on the host.
network() {
  ip link set lo up
  modprobe virtio_net 2>/dev/null
  # Pods' network (CNI bridge plugin): its modules do not always load on demand here.
  modprobe -a bridge veth 2>/dev/null
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
  ports=$(cat /berth-vm/ports 2>/dev/null)
  [ -n "$ports" ] || return 0
  echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
  for p in $ports; do
    iptables -t nat -A OUTPUT -d 127.0.0.1/32 -p tcp --dport "$p" -j DNAT --to-destination "10.0.2.2:$p"
  done
  iptables -t nat -A POSTROUTING -s 127.0.0.0/8 -d 10.0.2.2/32 -j SNAT --to-source 10.0.2.15
}

run() {
  exec </dev/null >/dev/ttyS0 2>&1
  # The root is an overlay on 9p: an overlayfs upper dir cannot live on it, so the places tests
  # and berthd keep their state are tmpfs.
  for d in /tmp /var/lib/berth; do
    mkdir -p "$d" && mount -t tmpfs -o mode=1777 tmpfs "$d"
  done
  chmod 755 /var/lib/berth
  network || echo "berth-vm: network setup failed" >&2
  bash /berth-vm/cmd
  echo $? > /berth-vm/rc.tmp && mv /berth-vm/rc.tmp /berth-vm/rc
  sync
  busybox poweroff -f
}

case ${1:-} in
  boot) mount_api; run ;;
  run) run ;;
  *) echo "usage: guest.sh boot|run" >&2; exit 2 ;;
esac
