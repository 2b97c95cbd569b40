# Helpers for the benchmarks in e2e/bench/: a release berthd and Debian's containerd (CRI plugin,
# runc), each on its own config, root, state and socket under a directory of the caller's, plus
# process, mount, memory and statistics helpers. Self-contained: source it after `set -euo
# pipefail`; it needs nothing from the caller except, for the messages, BENCH_NAME (default: the
# script's file name).
#
#   berthd_config DIR REGISTRY [STATE_DIR]
#                                     writes DIR/config.yaml: root DIR/root, state STATE_DIR (default
#                                     DIR/state, where the socket is), plain HTTP for REGISTRY
#   berthd_start DIR                  starts $BERTHD on it; sets BERTHD_PID
#   berthd_socket DIR                 its socket (read from DIR/config.yaml)
#   containerd_config DIR REGISTRY [SANDBOX_IMAGE [STATE_DIR]]
#                                     writes DIR/config.toml and DIR/certs.d: root DIR/root, state
#                                     STATE_DIR (default DIR/state, where the socket is), plain HTTP
#                                     for REGISTRY, runc's state in DIR/runc, empty CNI dirs (host
#                                     network pods only), sandbox_image SANDBOX_IMAGE when given
#   containerd_start DIR              starts containerd on it; sets CTD_PID
#   bridge_network BERTH_DIR CONTAINERD_DIR IPAM_DIR
#                                     one CNI bridge network (bridge + host-local + portmap of
#                                     /usr/lib/cni) for both, before they start
#   containerd_socket DIR             its socket (read from DIR/config.toml)
#   containerd_shims DIR              pids of the containerd-shim-runc-v2 processes of that containerd
#   stop_pid PID NAME                 SIGTERM, 15 s grace, SIGKILL
#   stop_side_by_side BERTH_DIR CONTAINERD_DIR DIR...
#                                     removes both runtimes' pods, stops $BERTHD_PID, $CTD_PID and
#                                     containerd's shims, unmounts and removes the DIRs
#   mounts_under DIR / unmount_under DIR
#   pss_kib PID / rss_kib PID         from /proc/PID/smaps_rollup (0 when PID is gone)
#   median / minimum / ratio A B / machine_line / berthd_build ROOT
#
# Nothing here cleans up by itself: the caller's EXIT trap stops what it started.

BENCH_NAME=${BENCH_NAME:-$(basename "$0")}
BERTHD=${BERTHD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/berthd}

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "--- $*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# stop_pid PID NAME: SIGTERM, 15 s grace, then SIGKILL. A pid that is gone is fine.
stop_pid() {
  local pid=$1 name=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$BENCH_NAME: $name ($pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# The end of a side-by-side run: pods removed through each runtime, both daemons and containerd's
# shims stopped, then whatever is mounted below the given directories, and the directories.
stop_side_by_side() { # stop_side_by_side BERTH_DIR CONTAINERD_DIR DIR...
  local b=$1 c=$2 sock pid dir
  shift 2
  for sock in "$(berthd_socket "$b" 2>/dev/null)" "$(containerd_socket "$c" 2>/dev/null)"; do
    [[ -S $sock ]] || continue
    crictl --runtime-endpoint "unix://$sock" rmp -af >/dev/null 2>&1 || true
  done
  [[ -n ${BERTHD_PID:-} ]] && stop_pid "$BERTHD_PID" berthd
  [[ -n ${CTD_PID:-} ]] && stop_pid "$CTD_PID" containerd
  for pid in $(containerd_shims "$c"); do stop_pid "$pid" containerd-shim; done
  for dir in "$@"; do
    [[ -n $dir && -d $dir ]] || continue
    unmount_under "$dir" || true
    rm -rf "$dir"
  done
}

# Mount points at or below $1, deepest first.
mounts_under() {
  findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1 || $0 == d' | sort -r
}

# Unmounts everything at or below $1 (lazily if busy); fails if anything is still mounted.
unmount_under() {
  local m
  for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [[ -z $(mounts_under "$1") ]]
}

# wait_socket SOCK PID NAME LOG: until SOCK exists; fails if PID exits or after 30 s.
wait_socket() {
  for _ in $(seq 300); do
    [[ -S $1 ]] && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at start; log: $4"; }
    sleep 0.1
  done
  die "$3 did not create $1 within 30 s"
}

# ---------------------------------------------------------------------------------------------------
# berthd

berthd_socket() { awk '$1 == "socket:" {print $2}' "$1/config.yaml"; }

berthd_config() { # berthd_config DIR REGISTRY [STATE_DIR]
  local state=${3:-$1/state}
  mkdir -p "$1"
  cat >"$1/config.yaml" <<YAML
root_dir: $1/root
state_dir: $state
grpc:
  socket: $state/berth.sock
log:
  format: json
registries:
  "$2":
    insecure: true
YAML
}

berthd_start() { # berthd_start DIR: sets BERTHD_PID
  [[ -x $BERTHD ]] || die "no berthd at $BERTHD: cargo build --release --bins"
  "$BERTHD" --config "$1/config.yaml" >>"$1/berthd.log" 2>&1 &
  BERTHD_PID=$!
  wait_socket "$(berthd_socket "$1")" "$BERTHD_PID" berthd "$1/berthd.log"
}

# ---------------------------------------------------------------------------------------------------
# containerd (Debian's 1.6, CRI plugin, runc v2 shim)

containerd_socket() { awk -F'"' '/^  address = / {print $2; exit}' "$1/config.toml"; }

containerd_config() { # containerd_config DIR REGISTRY [SANDBOX_IMAGE [STATE_DIR]]
  local dir=$1 reg=$2 sandbox_line="" state=${4:-$1/state}
  [[ -n ${3:-} ]] && sandbox_line="sandbox_image = \"$3\""
  mkdir -p "$dir"/{tmp,opt,runc,cni-bin,cni-conf,"certs.d/$reg"}
  # containerd 1.6 honours registry.config_path (hosts.toml), the non-deprecated way to say
  # "plain HTTP"; it cannot be combined with registry.mirrors.
  cat >"$dir/certs.d/$reg/hosts.toml" <<TOML
server = "http://$reg"
[host."http://$reg"]
  capabilities = ["pull", "resolve"]
TOML
  # restrict_oom_score_adj: root without CAP_SYS_RESOURCE may not lower oom_score_adj, which the
  # CRI plugin otherwise does for every sandbox (-998).
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  $sandbox_line
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni-bin"
    conf_dir = "$dir/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
}

# One network for both runtimes (host-local locks its lease dir); containerd reads plugins from its
# own bin dir, so the node's plugins are linked there.
bridge_network() { # bridge_network BERTH_DIR CONTAINERD_DIR IPAM_DIR
  cat >"$2/cni-conf/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "berth-bench", "plugins": [
  {"type": "bridge", "bridge": "bbench0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": "$3", "ranges": [[{"subnet": "10.98.0.0/16"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  ln -s /usr/lib/cni/* "$2/cni-bin/"
  printf 'network:\n  conf_dir: %s\n  bin_dirs: [/usr/lib/cni]\n' "$2/cni-conf" >>"$1/config.yaml"
}

containerd_start() { # containerd_start DIR: sets CTD_PID
  command -v containerd >/dev/null || die "containerd is missing: run hack/install-deps.sh"
  # containerd's applier mounts an image's first layer under $TMPDIR: keep that under DIR.
  TMPDIR=$1/tmp containerd --config "$1/config.toml" >>"$1/containerd.log" 2>&1 &
  CTD_PID=$!
  wait_socket "$(containerd_socket "$1")" "$CTD_PID" containerd "$1/containerd.log"
}

# Pids of the runc v2 shims serving the containerd on DIR (they outlive containerd by design).
containerd_shims() {
  local want pid
  want=$(containerd_socket "$1" 2>/dev/null) && [[ -n $want ]] || return 0
  # comm is cut to 15 characters: containerd-shim-runc-v2 shows as containerd-shim.
  for pid in $(pgrep -x containerd-shim 2>/dev/null); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-address $want " && echo "$pid"
  done | sort -un
}

# ---------------------------------------------------------------------------------------------------
# Memory and statistics

smaps_kib() { # smaps_kib FIELD PID
  awk -v f="$1:" '$1 == f {print $2; found = 1} END {if (!found) print 0}' "/proc/$2/smaps_rollup" 2>/dev/null || echo 0
}
pss_kib() { smaps_kib Pss "$1"; }
rss_kib() { smaps_kib Rss "$1"; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
minimum() { printf '%s\n' "$@" | sort -g | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b == 0) ? 0 : a / b}'; }

machine_line() {
  echo "$(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
}

# Which berthd is measured: the checkout's commit if it is this checkout's build.
berthd_build() { # berthd_build ROOT
  local at="$BERTHD, built $(date -u -r "$BERTHD" '+%Y-%m-%d %H:%M UTC')"
  if [[ $(realpath "$BERTHD") == "$1"/target/* ]] && git -C "$1" rev-parse HEAD >/dev/null 2>&1; then
    at+=", checkout at $(git -C "$1" rev-parse --short HEAD)"
    git -C "$1" diff --quiet HEAD -- src Cargo.toml Cargo.lock || at+=" with uncommitted changes to src/ or Cargo.*"
  fi
  echo "$at"
}
