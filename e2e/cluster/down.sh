#!/usr/bin/env bash
# Removes everything e2e/cluster/up.sh made, also after a failed or interrupted start: the
# nodes' pods (through their berthd), kubelets, kube-proxies, berthds and leftover berth-shims
# (known by their executable, $CL_DIR/bin/berth-shim), the control plane and forwarders (by pid
# file, each checked to still be this cluster's), the berth-cl-* network namespaces (their veths,
# bridges, routes and iptables rules go with them), the nodes' cgroup roots, mounts under $CL_DIR
# and $CL_DIR itself. Touches nothing else. Safe to run when nothing is up.
source "$(dirname "$0")/lib.sh"
source "$CL_ROOT/e2e/cluster/ctrd-node.sh"
[[ $EUID -eq 0 ]] || cl_die "down.sh needs root"

for n in "${NODES[@]}"; do
  ((n == CTRD_NODE)) && stop "systemd-n$n" 2 # the containerd node's stand-in systemd first
  stop "kube-proxy-n$n"
  stop "kubelet-n$n" 20
  if ((n == CTRD_NODE)) && pid_of "containerd-n$n" >/dev/null; then
    for pod in $(crictl_ctrd pods -q 2>/dev/null); do
      crictl_ctrd stopp "$pod" >/dev/null 2>&1 || true
      crictl_ctrd rmp -f "$pod" >/dev/null 2>&1 || true
    done
  fi
  ((n == CTRD_NODE)) && stop "containerd-n$n" 15
  # Pods outlive berthd by design: remove them through it while it runs.
  if pid_of "berthd-n$n" >/dev/null; then
    for pod in $(crictl_n "$n" pods -q 2>/dev/null); do
      crictl_n "$n" stopp "$pod" >/dev/null 2>&1 || true
      crictl_n "$n" rmp -f "$pod" >/dev/null 2>&1 || true
    done
  fi
  stop "berthd-n$n" 15
done
# Shims left behind (a berthd that died, a pod it could not remove).
# containerd's shims of the containerd node name its socket (under $CL_DIR) on their command line.
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  case $exe in
    "$BIN/berth-shim" | "$(node_host "$CTRD_NODE")/usr/local/bin/berth-shim"*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;;
    */containerd-shim*)
      tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$(ctrd_sock)" && kill -KILL "${p#/proc/}" 2>/dev/null || true ;;
  esac
done
for n in "${NODES[@]}"; do
  stop "forward-registry-n$n" 2
  stop "holder-n$n" 2
done
for name in kube-scheduler kube-controller-manager kube-apiserver etcd forward-apiserver; do
  stop "$name" 15
done

for ns in $(ip netns list | awk -v p="$CL-" 'index($1, p) == 1 {print $1}'); do
  ip netns del "$ns" || cl_log "could not delete network namespace $ns"
done

for n in "${NODES[@]}"; do
  for h in /sys/fs/cgroup/*; do
    [[ -d $h/$(node_cgroup "$n") && ! -L $h ]] || continue
    # Processes still in it (a container whose shim was killed) go first.
    find "$h/$(node_cgroup "$n")" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    for _ in $(seq 20); do
      find "$h/$(node_cgroup "$n")" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $h/$(node_cgroup "$n") ]] || break
      sleep 0.5
    done
    [[ ! -d $h/$(node_cgroup "$n") ]] || cl_log "could not remove cgroup $h/$(node_cgroup "$n")"
  done
done

if [[ -d $CL_DIR ]]; then
  awk -v d="$CL_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$CL_DIR"
fi
[[ ! -e $CL_DIR ]] || cl_die "could not remove $CL_DIR"
cl_log "down"
