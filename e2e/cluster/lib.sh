# The layout of the e2e cluster (e2e/cluster/up.sh, test.sh, down.sh): names, addresses,
# directories and the helpers the three scripts share. Source it.
#
# Everything the cluster makes is named after $CL (netns, cgroup roots) or lives in $CL_DIR, so
# down.sh can remove exactly that and nothing else.
set -euo pipefail

CL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CL=berth-cl
# On the root filesystem (not /run or /tmp): the nodes' mount namespaces keep it and drop the rest.
# Short: a node's berthd state dir, $CL_DIR/nN/run, must stay within 27 bytes.
CL_DIR=${BERTH_CLUSTER_DIR:-/var/lib/berth-cl}
PKI=$CL_DIR/pki
PIDS=$CL_DIR/pids
LOGS=$CL_DIR/logs
BIN=$CL_DIR/bin

NODES=(1 2 3)
BERTH_NODES=(1 2)                     # nodes that run berth from the start
CTRD_NODE=3                           # starts on Debian's containerd; berth's DaemonSet installer switches it
CP_NS=$CL-cp                          # etcd, the control plane, and the bridge joining the nodes
FABRIC=172.30.16                      # the nodes' network: $FABRIC.0/24 on the bridge in $CP_NS
CP_IP=$FABRIC.1
CLUSTER_CIDR=10.216.0.0/16            # node N's pods: 10.216.N.0/24 on its own bridge cni0
SERVICE_CIDR=10.217.0.0/24
KUBERNETES_SVC_IP=10.217.0.1
API_PORT=6443                         # in $CP_NS; the host reaches it on 127.0.0.1:$(cat $CL_DIR/api-port)

node_ns() { echo "$CL-n$1"; }
node_name() { echo "berth-node$1"; }
node_ip() { echo "$FABRIC.$((10 + $1))"; }
node_pod_cidr() { echo "10.216.$1.0/24"; }
node_dir() { echo "$CL_DIR/n$1"; }
node_cgroup() { echo "$CL-n$1"; }     # kubelet's cgroupRoot, in every v1 hierarchy
node_sock() {
  if (($1 == CTRD_NODE)); then echo "$(node_host "$1")/run/berth/berth.sock"; else echo "$(node_dir "$1")/run/berth.sock"; fi
}
# The containerd node's "host root": what the installer's hostPath mounts as /host; its run/ is
# the node's /run (so /run/berth/berth.sock, the socket the installer points kubelet at, is there).
node_host() { echo "$(node_dir "$1")/host"; }
ctrd_sock() { echo "$(node_host "$CTRD_NODE")/run/containerd/containerd.sock"; }

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin"

cl_log() { echo "cluster: $*" >&2; }
cl_die() { echo "cluster: $*" >&2; exit 1; }

# The v1 hierarchies kubelet and berth use (on a hybrid host, not the unified one).
cgroup_hierarchies() { find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d ! -name unified; }

# pid_of NAME: the pid in $PIDS/NAME.pid if that process still runs one of this cluster's commands
# (its command line names $CL_DIR or a $CL network namespace), so a reused pid is never taken.
pid_of() {
  local pid
  [[ -s $PIDS/$1.pid ]] || return 1
  pid=$(<"$PIDS/$1.pid")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qE -- "$CL_DIR|/run/netns/$CL-" || return 1
  echo "$pid"
}

# stop NAME [SECONDS]: TERM, then KILL after SECONDS (default 10), of the process in NAME.pid.
stop() {
  local pid
  pid=$(pid_of "$1") || { rm -f "$PIDS/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((${2:-10} * 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$PIDS/$1.pid"
}

# wait_for SECONDS COMMAND...: polls every half second.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# kubectl as the cluster's admin, from the host.
k() { "$BIN/kubectl" --kubeconfig "$CL_DIR/admin.kubeconfig" "$@"; }

# in_node N COMMAND...: COMMAND in node N's network and mount namespaces (those of its holder
# process), where its berthd and kubelet run. `in_node N COMMAND &` runs in a subshell, so $!
# would name the subshell: spawn_in_node starts COMMAND in the background and records its own pid.
in_node() {
  local n=$1 holder
  shift
  holder=$(pid_of "holder-n$n") || cl_die "node $n is not running (no holder process)"
  nsenter --mount="/proc/$holder/ns/mnt" --net="/run/netns/$(node_ns "$n")" "$@"
}
# spawn_in_node N NAME LOG COMMAND...: COMMAND in the background in node N, its pid in NAME.pid,
# its output appended to LOG.
spawn_in_node() {
  local n=$1 name=$2 log=$3 holder
  shift 3
  holder=$(pid_of "holder-n$n") || cl_die "node $n is not running (no holder process)"
  nsenter --mount="/proc/$holder/ns/mnt" --net="/run/netns/$(node_ns "$n")" "$@" >> "$log" 2>&1 &
  echo $! > "$PIDS/$name.pid"
}

# crictl against node N's berthd (its socket is on the host's filesystem too).
crictl_n() {
  local n=$1
  shift
  # (crictl warns at every call when it finds no config file; the flags say all it needs)
  CRI_CONFIG_FILE=/dev/null crictl --runtime-endpoint "unix://$(node_sock "$n")" \
    --image-endpoint "unix://$(node_sock "$n")" "$@"
}
