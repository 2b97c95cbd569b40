#!/usr/bin/env bash
# The cgroup side of a pod as kubelet sets it up, on cgroup v2 in the e2e/vm guest, for one cgroup
# driver (BERTH_E2E_CGROUP_DRIVER, cgroupfs by default; e2e/vm/suite.sh runs both) and each
# runtime handler (built-in, runc, crun):
# - `crictl info` names the driver;
# - a container of a pod with kubelet's cgroup parent for that driver is in the cgroup kubelet
#   expects (systemd: the delegated scope berth-<id>.scope in the pod's slice), with its limits;
# - the device program refuses a device the container was not given;
# - with `memory.oom.group` = 1 an OOM kill takes the whole container down, reported OOMKilled;
# - removing the pod leaves no berth unit, no pod slice berth started, no container cgroup.
source "$(dirname "$0")/../lib.sh"
DRIVER=${BERTH_E2E_CGROUP_DRIVER:-cgroupfs}
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || fail "needs pure cgroup v2: run it through e2e/vm/suite.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true
runtime:
  handlers:
  - name: runc
    path: /usr/sbin/runc
  - name: crun
    path: /usr/bin/crun"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"
got=$(crictl_b info | jq -r .config.cgroup.driver)
[[ $got == "$DRIVER" ]] || fail "crictl info: cgroup driver $got, not $DRIVER"
pass "crictl info shows the $DRIVER cgroup driver"

units() { systemctl list-units --all --plain --no-legend --type=scope,slice "$@" 2>/dev/null | awk '{print $1}'; }
wait_exited() { # wait_exited CTR: its reason once it exited (60 s at most)
  for _ in $(seq 600); do
    if [[ $(crictl_b inspect "$1" | jq -r .status.state) == CONTAINER_EXITED ]]; then
      crictl_b inspect "$1" | jq -r .status.reason
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# BERTH_E2E_HANDLERS: the handlers to check (default: built-in runc crun).
for name in ${BERTH_E2E_HANDLERS:-built-in runc crun}; do
  handler=$name; [[ $name == built-in ]] && handler=
  uid=e2e${RANDOM}x$$
  case $DRIVER in
    systemd)
      parent=kubepods-besteffort-pod$uid.slice
      pdir=/kubepods.slice/kubepods-besteffort.slice/$parent ;;
    *)
      parent=/kubepods/besteffort/pod$uid
      pdir=$parent ;;
  esac
  cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "cg-$uid", "namespace": "default", "uid": "$uid", "attempt": 0},
 "log_directory": "$WORK/logs/$uid", "linux": {"cgroup_parent": "$parent"}}
JSON
  POD=$(crictl_b runp --runtime "$handler" "$WORK/pod.json") || fail "$name: crictl runp"
  cat > "$WORK/limited.json" <<JSON
{"metadata": {"name": "limited"}, "image": {"image": "$IMG"}, "command": ["sleep", "1000"],
 "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000,
   "cpu_quota": 50000, "cpu_shares": 512}}}
JSON
  CTR=$(crictl_b create "$POD" "$WORK/limited.json" "$WORK/pod.json") || fail "$name: crictl create"
  crictl_b start "$CTR" >/dev/null || fail "$name: crictl start"
  pid=$(crictl_b inspect "$CTR" | jq -r .info.pid)
  cg=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
  case $DRIVER in
    systemd)
      # crun puts the process, and its limits, in a child `container` of its delegated scope.
      [[ $cg == "$pdir/berth-$CTR.scope" || ($name == crun && $cg == "$pdir/berth-$CTR.scope/container") ]] ||
        fail "$name: container cgroup $cg, not the scope in $pdir"
      [[ $(systemctl show -p ActiveState --value "berth-$CTR.scope") == active ]] || fail "$name: scope not active"
      [[ $(systemctl show -p Delegate --value "berth-$CTR.scope") == yes ]] || fail "$name: scope not delegated" ;;
    *)
      [[ $cg == "$pdir/$CTR" ]] || fail "$name: container cgroup $cg, not $pdir/$CTR" ;;
  esac
  dir=/sys/fs/cgroup$cg
  [[ $(cat "$dir/memory.max") == 67108864 ]] || fail "$name: memory.max $(cat "$dir/memory.max")"
  [[ $(cat "$dir/cpu.max") == "50000 100000" ]] || fail "$name: cpu.max $(cat "$dir/cpu.max")"
  pass "$name: container in $cg with its memory and CPU limits"

  if out=$(crictl_b exec "$CTR" sh -c 'mknod /tmp/mem c 1 1 && head -c1 /tmp/mem' 2>&1); then
    fail "$name: the container read /dev/mem through a node it made: $out"
  fi
  [[ $out == *"not permitted"* ]] || fail "$name: refused, but not by the device policy: $out"
  crictl_b exec "$CTR" sh -c 'echo x > /dev/null' || fail "$name: /dev/null is refused"
  pass "$name: the device program refuses a device the container was not given"

  cat > "$WORK/hog.json" <<JSON
{"metadata": {"name": "hog"}, "image": {"image": "$IMG"}, "log_path": "hog.log",
 "command": ["sh", "-c", "tail /dev/zero & wait; echo survived; sleep 1000"],
 "linux": {"resources": {"memory_limit_in_bytes": 33554432, "unified": {"memory.oom.group": "1"}}}}
JSON
  HOG=$(crictl_b create "$POD" "$WORK/hog.json" "$WORK/pod.json") || fail "$name: create the hog"
  crictl_b start "$HOG" >/dev/null || fail "$name: start the hog"
  reason=$(wait_exited "$HOG") || fail "$name: the hog still runs: memory.oom.group did not kill the group"
  [[ $reason == OOMKilled ]] || fail "$name: hog exited with reason '$reason', not OOMKilled"
  ! grep -q survived "$WORK/logs/$uid/hog.log" || fail "$name: the hog's shell survived the OOM kill"
  pass "$name: memory.oom.group: the OOM kill took the whole container, reported OOMKilled"

  crictl_b stopp "$POD" >/dev/null && crictl_b rmp "$POD" >/dev/null || fail "$name: remove the pod"
  [[ ! -e $dir ]] || fail "$name: $cg left behind"
  if [[ $DRIVER == systemd ]]; then
    # A stopped unit stays listed until systemd's next garbage collection.
    for _ in $(seq 100); do
      left=$(units 'berth-*' "$parent")
      [[ -z $left ]] && break
      sleep 0.1
    done
    [[ -z $left ]] || fail "$name: units left behind: $left"
    [[ ! -e /sys/fs/cgroup$pdir ]] || fail "$name: the pod slice's cgroup is left behind"
  elif [[ -e /sys/fs/cgroup$pdir ]]; then
    # With cgroupfs the pod's cgroup (its cgroup_parent) is kubelet's: berth leaves it, and the
    # script removes it as kubelet would (rmdir fails if anything is left in it).
    rmdir "/sys/fs/cgroup$pdir" || fail "$name: the pod cgroup $pdir is not empty"
  fi
  pass "$name: pod removed, no unit or cgroup left behind"
done
