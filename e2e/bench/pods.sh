#!/usr/bin/env bash
# Pod benchmark (not a test: hack/test-all.sh runs e2e/*.sh only). In one run, on this machine, a
# release berthd against Debian's containerd + runc (CRI plugin, its own config, root, state and
# socket), both running the same busybox image from the local plain registry:
#   (1) pod start: RunPodSandbox, CreateContainer, StartContainer of a host-network pod with one
#       `sleep 3600` container, each phase timed, median of N runs (pods removed between runs)
#   (2) ExecSync `echo hi` latency in a running container, median of M calls; and the round trip
#       of a streamed `crictl exec CTR true` (Exec + SPDY session), median of S runs
#   (3) memory per pod: PSS and RSS of every process the runtime adds per pod (berth: the
#       berth-shim; containerd: containerd-shim-runc-v2 and the pause process; never the container's
#       own sleep), with P pods running at once
#   (4) each daemon's idle PSS and RSS, freshly started with no pods
# Timing comes from examples/bench_client.rs (one gRPC connection, times each RPC), not crictl,
# whose own start-up would be in every number. docs/benchmarks.md ("Pods") explains each number and
# keeps the measured results.
#
#   e2e/bench/pods.sh [-n RUNS] [--execs M] [--stream-execs S] [--pods P]
#
# Build first: cargo build --release --bins --example bench_client
# Environment: BERTHD (default target/release/berthd; berth-shim beside it), BENCH_CLIENT (default
# target/release/examples/bench_client), BENCH_OUT (where results go, default /tmp/berth-bench),
# BENCH_RUNS (default 10), BENCH_EXECS (default 100), BENCH_STREAM_EXECS (default 30), BENCH_PODS (default 30),
# BENCH_FS: `loop` (default) puts both daemons' roots on a fresh journaled ext4 on a loop device of
# BENCH_FS_SIZE (default 2G) as e2e/bench/pull.sh does; `host` uses the filesystem of $TMPDIR. Both
# daemons' state dirs are on a tmpfs either way (/run/berth and /run/containerd are, on a node).
# BENCH_NETWORK: `host` (default) runs host-network pods; `bridge` gives every pod its own network
# namespace on a CNI bridge network (bridge + host-local + portmap, the plugins of /usr/lib/cni),
# the same conflist in both runtimes' conf dirs, so pod start includes the CNI ADD.
# containerd needs a sandbox ("pause") image: e2e/bench/pause.c, built with gcc -static and pushed as
# bench/pause:<hash of its sources> the first time. Needs root and what hack/install-deps.sh installs
# (plus gcc and libc6-dev); starts the test registry if it is down. Everything it starts is stopped,
# its pods removed, its cgroups, mounts and temp dir removed, on exit, also after a failure or ^C.
set -euo pipefail
shopt -s inherit_errexit

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BENCH_NAME=pods.sh
source "$BENCH/lib.sh"
CLIENT=${BENCH_CLIENT:-$ROOT/target/release/examples/bench_client}
OUT=${BENCH_OUT:-/tmp/berth-bench}
RUNS=${BENCH_RUNS:-10}
EXECS=${BENCH_EXECS:-100}
STREAM_EXECS=${BENCH_STREAM_EXECS:-30}
PODS=${BENCH_PODS:-30}
FS_MODE=${BENCH_FS:-loop}
FS_SIZE=${BENCH_FS_SIZE:-2G}
NETWORK=${BENCH_NETWORK:-host}

while (($#)); do
  case $1 in
    -n) RUNS=$2; shift 2 ;;
    --execs) EXECS=$2; shift 2 ;;
    --stream-execs) STREAM_EXECS=$2; shift 2 ;;
    --pods) PODS=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done

[[ $EUID -eq 0 ]] || die "needs root (namespaces, mounts, cgroups, two runtimes)"
for n in "$RUNS" "$EXECS" "$PODS"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "counts must be positive numbers, got $n"; done
((EXECS >= 50)) || log "fewer than 50 ExecSync calls: the median is less reliable"
[[ -x $BERTHD ]] || die "no berthd at $BERTHD: cargo build --release --bins"
[[ -x $(dirname "$BERTHD")/berth-shim ]] || die "no berth-shim beside $BERTHD: cargo build --release --bins"
[[ -x $CLIENT ]] || die "no bench client at $CLIENT: cargo build --release --example bench_client"
[[ $FS_MODE == loop || $FS_MODE == host ]] || die "BENCH_FS is loop or host, not $FS_MODE"
[[ $NETWORK == host || $NETWORK == bridge ]] || die "BENCH_NETWORK is host or bridge, not $NETWORK"
for tool in crictl containerd containerd-shim-runc-v2 runc gcc jq curl python3 findmnt losetup mkfs.ext4 sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing: run hack/install-deps.sh (and apt-get install gcc libc6-dev)"
done

# ---------------------------------------------------------------------------------------------------
# Cleanup: pods first (through each runtime), then the daemons, then whatever is left of the
# processes, mounts, cgroups and files they made, even after a failure or ^C.

WORK=""
RUN=""
B=""
C=""
SOCK_B=""
SOCK_C=""
LOOP=""
BERTHD_PID=""
CTD_PID=""
CGROUP=berth-bench-$$ # every pod's cgroup parent is /$CGROUP/<runtime>/<pod>

# Pids of the processes below the given ones (not themselves), from /proc.
descendants() {
  ps -e -o pid=,ppid= | awk -v roots=" $* " '
    {parent[$1] = $2; pids[NR] = $1}
    END {
      changed = 1
      while (changed) {
        changed = 0
        for (i in pids) {
          p = pids[i]
          if (!(p in in_tree) && index(roots, " " parent[p] " ") == 0 && !(parent[p] in in_tree)) continue
          if (!(p in in_tree)) { in_tree[p] = 1; changed = 1 }
        }
      }
      for (p in in_tree) print p
    }'
}

# Pids of the berth shims of the berthd with its state on $RUN/b (they outlive berthd).
berth_shims() {
  local f pid
  [[ -n $RUN ]] || return 0
  for f in "$RUN"/b/pods/*/shim.pid; do
    [[ -r $f ]] || continue
    pid=$(cat "$f")
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */berth-shim ]] && echo "$pid"
  done
  return 0
}

# Kills what the CRI could not remove: the shims and everything below them, by pid.
kill_leftovers() {
  local shims pids
  shims=$( (berth_shims; [[ -z $C ]] || containerd_shims "$C") | sort -un)
  [[ -n $shims ]] || return 0
  # shellcheck disable=SC2086 # lists of pids
  pids=$(descendants $shims)
  echo "$BENCH_NAME: killing leftover shims and their processes: $(echo $shims $pids)" >&2
  # shellcheck disable=SC2086
  kill -KILL $pids $shims 2>/dev/null || true
  sleep 0.5
}

remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/"$CGROUP"; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $d ]] && { echo "$BENCH_NAME: could not remove cgroup $d" >&2; return 1; }
  done
  return 0
}

cleanup() {
  local rc=$? f
  set +e
  trap - EXIT INT TERM
  [[ -n ${ATTACH_PID:-} ]] && kill "$ATTACH_PID" 2>/dev/null
  if [[ -n $BERTHD_PID ]] && kill -0 "$BERTHD_PID" 2>/dev/null; then
    "$CLIENT" --socket "$SOCK_B" clean --prefix bench >/dev/null || rc=1
  fi
  if [[ -n $CTD_PID ]] && kill -0 "$CTD_PID" 2>/dev/null; then
    "$CLIENT" --socket "$SOCK_C" clean --prefix bench >/dev/null || rc=1
  fi
  stop_pid "$BERTHD_PID" berthd
  stop_pid "$CTD_PID" containerd
  if ((rc != 0)) && [[ -n $B && -n $C ]]; then
    local keep
    keep=$OUT/pods-failed-$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$keep"
    cp "$B/berthd.log" "$C/containerd.log" "$keep/" 2>/dev/null
    for f in "$RUN"/b/pods/*/shim.log; do [[ -r $f ]] && cp "$f" "$keep/shim-$(basename "$(dirname "$f")").log"; done
    echo "$BENCH_NAME: failed; the daemons' logs are in $keep" >&2
  fi
  [[ -n $WORK || -n $RUN ]] && kill_leftovers
  if [[ -n $RUN && -d $RUN ]]; then
    if unmount_under "$RUN"; then
      rmdir "$RUN"
    else
      echo "$BENCH_NAME: mounts left under $RUN:" >&2
      mounts_under "$RUN" >&2
      rc=1
    fi
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if unmount_under "$WORK"; then
      [[ -n $LOOP ]] && losetup -d "$LOOP"
      rm -rf "$WORK"
    else
      echo "$BENCH_NAME: mounts left under $WORK, not removing it:" >&2
      mounts_under "$WORK" >&2
      rc=1
    fi
  fi
  remove_cgroups || rc=1
  [[ ${NETWORK:-host} == bridge ]] && ip link del bbench0 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------
# Registry and images: busybox for the containers, a pause image for containerd's sandboxes.

"$ROOT/hack/registry.sh" start >/dev/null
eval "$("$ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
IMAGE=$REG/library/busybox:latest
ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
tag_exists() { curl -sf -o /dev/null -I -H "Accept: $ACCEPT" "http://$REG/v2/$1/manifests/$2"; }

tag_exists library/busybox latest || {
  log "building the busybox test image"
  "$ROOT/hack/testimages/build.sh" busybox >&2
}

mkdir -p "$OUT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-pods.XXXXXX")

# Measure copies of the binaries: a rebuild of target/ during the run (the checkout is shared)
# must not mix versions between pods.
BERTHD_DESC=$(berthd_build "$ROOT")
mkdir "$WORK/bin"
cp "$BERTHD" "$(dirname "$BERTHD")/berth-shim" "$CLIENT" "$WORK/bin/"
BERTHD=$WORK/bin/berthd
CLIENT=$WORK/bin/$(basename "$CLIENT")

# The pause image's tag is a hash of what it is built from, so a changed pause.c is pushed anew.
PAUSE_TAG=$(cat "$BENCH/pause.c" "$BENCH/pause.json" | sha256sum | cut -c1-12)
PAUSE=$REG/bench/pause:$PAUSE_TAG
if ! tag_exists bench/pause "$PAUSE_TAG"; then
  log "building $PAUSE from e2e/bench/pause.c"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$WORK/pause" "$BENCH/pause.c"
  BENCH_PAUSE_BIN=$WORK/pause python3 "$ROOT/hack/testimages/mkimage.py" \
    "$BENCH/pause.json" "$WORK/pause-layout" --tag "$PAUSE_TAG" >/dev/null
  python3 "$ROOT/hack/testimages/push.py" --registry "http://$REG" "$WORK/pause-layout" bench/pause >&2
  rm -rf "$WORK/pause" "$WORK/pause-layout"
fi

# ---------------------------------------------------------------------------------------------------
# Filesystems: roots on $FS (see pull.sh and docs/benchmarks.md for why a loop device), state on a
# tmpfs as /run is on a node.

if [[ $FS_MODE == loop ]]; then
  truncate -s "$FS_SIZE" "$WORK/fs.img"
  LOOP=$(losetup --find --show --direct-io=on "$WORK/fs.img")
  mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP"
  mkdir "$WORK/fs"
  mount "$LOOP" "$WORK/fs"
  FS=$WORK/fs
  FS_DESC="a fresh ext4 (journal, $(findmnt -no OPTIONS "$FS")) on $LOOP (direct I/O), backed by a $FS_SIZE sparse file on $(findmnt -no FSTYPE -T "$WORK") ($(findmnt -no SOURCE -T "$WORK"))"
else
  FS=$WORK
  FS_DESC="$(findmnt -no FSTYPE -T "$WORK") ($(findmnt -no SOURCE -T "$WORK"), $(findmnt -no OPTIONS -T "$WORK")) at $WORK"
fi
# Short, because a unix socket path has at most 107 bytes: berth's shim sockets are
# <state_dir>/pods/<64 hex>/shim.sock.
RUN=$(mktemp -d /run/bbp.XXXXXX)
mount -t tmpfs -o mode=0755 bench-run "$RUN"

# Each daemon: config, logs and root on $FS; state (sockets, bundles, pins) on the tmpfs.
B=$FS/berth
C=$FS/containerd
berthd_config "$B" "$REG" "$RUN/b"
containerd_config "$C" "$REG" "$PAUSE" "$RUN/c"
[[ $NETWORK == bridge ]] && bridge_network "$B" "$C" "$WORK/ipam"
SOCK_B=$(berthd_socket "$B")
SOCK_C=$(containerd_socket "$C")
mkdir -p "$FS/logs/berth" "$FS/logs/containerd"

for rt in berth containerd; do
  sock=$SOCK_B
  [[ $rt == containerd ]] && sock=$SOCK_C
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 600\n' "$sock" "$sock" >"$WORK/crictl-$rt.yaml"
done
crictl_b() { crictl --config "$WORK/crictl-berth.yaml" "$@"; }
crictl_c() { crictl --config "$WORK/crictl-containerd.yaml" "$@"; }
client() { # client berth|containerd ARGS...: the bench client against that runtime
  local sock=$SOCK_B rt=$1
  [[ $rt == containerd ]] && sock=$SOCK_C
  shift
  "$CLIENT" --socket "$sock" "$@"
}
pod_args() { # the pod arguments of the bench client for runtime $1
  echo --image "$IMAGE" --cgroup-parent "/$CGROUP/$1" --log-dir "$FS/logs/$1"
  [[ $NETWORK == host ]] || echo --pod-network
}

# ---------------------------------------------------------------------------------------------------
# (4) Idle daemons: started fresh, nothing asked of them but Version, measured after a settle.

berthd_start "$B"
containerd_start "$C"
crictl_b version >/dev/null || die "berthd does not answer; see $B/berthd.log"
crictl_c version >/dev/null || die "containerd's CRI does not answer; see $C/containerd.log"
sleep 3
IDLE_B_PSS=$(pss_kib "$BERTHD_PID") IDLE_B_RSS=$(rss_kib "$BERTHD_PID")
IDLE_C_PSS=$(pss_kib "$CTD_PID") IDLE_C_RSS=$(rss_kib "$CTD_PID")
log "idle: berthd PSS $IDLE_B_PSS KiB, RSS $IDLE_B_RSS KiB; containerd PSS $IDLE_C_PSS KiB, RSS $IDLE_C_RSS KiB"

log "pulling $IMAGE into both, $PAUSE into containerd (not timed)"
crictl_b pull "$IMAGE" >/dev/null
crictl_c pull "$IMAGE" >/dev/null
crictl_c pull "$PAUSE" >/dev/null

# crictl's own cost, for context: what every crictl call adds on top of the RPC.
elapsed_ms() { LC_ALL=C awk -v a="${1/,/.}" -v b="${2/,/.}" 'BEGIN {printf "%.2f", (b - a) * 1000}'; }
CRICTL_MS=()
for _ in 1 2 3 4 5; do
  t0=$EPOCHREALTIME
  crictl_b version >/dev/null
  t1=$EPOCHREALTIME
  CRICTL_MS+=("$(elapsed_ms "$t0" "$t1")")
done
CRICTL_MEDIAN=$(awk -v m="$(median "${CRICTL_MS[@]}")" 'BEGIN {printf "%.1f", m}')

# For context: how long this kernel makes anyone wait to move a process into a cgroup after a
# quiet spell (cgroup_threadgroup_rwsem's writer waits for an RCU grace period). Every runtime
# does it at least once per container; right after another move it is almost free.
ATTACH_PID=""
measure_attach() { # sets ATTACH_MS: the median of 6 moves of a sleeping process, each after 0.5 s idle
  local base=/sys/fs/cgroup d i to t0 t1 ms=()
  [[ -f /sys/fs/cgroup/pids/cgroup.procs ]] && base=/sys/fs/cgroup/pids # v1 (hybrid); else v2
  d=$base/$CGROUP/attach
  mkdir -p "$d/a" "$d/b"
  sleep 60 &
  ATTACH_PID=$!
  for i in 1 2 3 4 5 6; do
    to=a
    ((i % 2)) || to=b
    sleep 0.5
    t0=$EPOCHREALTIME
    echo "$ATTACH_PID" >"$d/$to/cgroup.procs"
    t1=$EPOCHREALTIME
    ms+=("$(elapsed_ms "$t0" "$t1")")
  done
  kill "$ATTACH_PID"
  wait "$ATTACH_PID" 2>/dev/null || true
  ATTACH_PID=""
  rmdir "$d/a" "$d/b" "$d"
  ATTACH_MS=$(median "${ms[@]}")
}
measure_attach

# ---------------------------------------------------------------------------------------------------
# (1) Pod start, one pod at a time, the two runtimes alternating which goes first.

log "warm-up: one pod each (not counted)"
# shellcheck disable=SC2046 # pod_args is a list of words
client berth pods $(pod_args berth) --prefix bench-warm >/dev/null
# shellcheck disable=SC2046
client containerd pods $(pod_args containerd) --prefix bench-warm >/dev/null

: >"$WORK/start-berth.jsonl"
: >"$WORK/start-containerd.jsonl"
for i in $(seq "$RUNS"); do
  order="berth containerd"
  ((i % 2)) || order="containerd berth"
  for rt in $order; do
    # shellcheck disable=SC2046
    client "$rt" pods $(pod_args "$rt") --prefix bench-start >>"$WORK/start-$rt.jsonl"
  done
  log "round $i/$RUNS: berth $(tail -n 1 "$WORK/start-berth.jsonl" | jq '.total_ms') ms, containerd $(tail -n 1 "$WORK/start-containerd.jsonl" | jq '.total_ms') ms"
done

field() { jq -r ".$2" "$WORK/start-$1.jsonl"; } # field RUNTIME NAME: one value per run
med() { # med RUNTIME NAME: the median of a field, one decimal
  # shellcheck disable=SC2046
  awk -v m="$(median $(field "$1" "$2"))" 'BEGIN {printf "%.1f", m}'
}

# ---------------------------------------------------------------------------------------------------
# (2) ExecSync latency, one running container each.

for rt in berth containerd; do
  log "$rt: $EXECS ExecSync calls"
  # shellcheck disable=SC2046
  client "$rt" exec $(pod_args "$rt") --prefix bench-exec --runs "$EXECS" >"$WORK/exec-$rt.txt"
done
# shellcheck disable=SC2046
EXEC_B=$(median $(cat "$WORK/exec-berth.txt"))
# shellcheck disable=SC2046
EXEC_C=$(median $(cat "$WORK/exec-containerd.txt"))

# ---------------------------------------------------------------------------------------------------
# (2b) Streamed exec round trip: `crictl exec CTR true` (Exec, then the SPDY session on the
# runtime's streaming server, to the exit status), timed around the whole crictl run, whose own
# start-up is the same for both; one running container each, median of $STREAM_EXECS calls.

for rt in berth containerd; do
  crictl_rt=crictl_b
  [[ $rt == containerd ]] && crictl_rt=crictl_c
  # shellcheck disable=SC2046
  client "$rt" pods $(pod_args "$rt") --prefix bench-stream --count 1 --keep >/dev/null
  ctr=$($crictl_rt ps -q 2>/dev/null | head -n 1)
  [[ -n $ctr ]] || die "$rt: no running container for the streamed exec round"
  log "$rt: $STREAM_EXECS crictl exec round trips"
  for i in $(seq $((STREAM_EXECS + 3))); do
    t0=$(date +%s%N)
    $crictl_rt exec "$ctr" true >/dev/null 2>&1 || die "$rt: crictl exec failed"
    t1=$(date +%s%N)
    ((i > 3)) && awk -v d=$((t1 - t0)) 'BEGIN {printf "%.3f\n", d / 1e6}'
  done >"$WORK/stream-$rt.txt"
  client "$rt" clean --prefix bench-stream
done
# shellcheck disable=SC2046
STREAM_B=$(median $(cat "$WORK/stream-berth.txt"))
# shellcheck disable=SC2046
STREAM_C=$(median $(cat "$WORK/stream-containerd.txt"))

# ---------------------------------------------------------------------------------------------------
# (3) Memory per pod: $PODS pods at once in one runtime, then in the other.

# Sums PSS and RSS (KiB) over the given pids; prints "pss rss count names".
sum_memory() {
  local pid pss=0 rss=0 n=0 names=""
  for pid in "$@"; do
    pss=$((pss + $(pss_kib "$pid")))
    rss=$((rss + $(rss_kib "$pid")))
    n=$((n + 1))
    names+="$(cat "/proc/$pid/comm" 2>/dev/null || echo gone)"$'\n'
  done
  echo "$pss $rss $n $(printf '%s' "$names" | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1) ? ", " : "", $2, $1}')"
}

# The processes a runtime added for its pods: the shims and everything below them except the
# containers' own `sleep 3600`.
pod_processes() { # pod_processes RUNTIME
  local shims pid
  if [[ $1 == berth ]]; then shims=$(berth_shims); else shims=$(containerd_shims "$C"); fi
  # shellcheck disable=SC2086
  for pid in $shims $(descendants $shims); do
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == "sleep 3600 " ]] && continue
    echo "$pid"
  done
}
containers_running() { # containers_running RUNTIME: how many `sleep 3600` run below its shims
  local shims pid n=0
  if [[ $1 == berth ]]; then shims=$(berth_shims); else shims=$(containerd_shims "$C"); fi
  # shellcheck disable=SC2086
  for pid in $(descendants $shims); do
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == "sleep 3600 " ]] && n=$((n + 1))
  done
  echo "$n"
}

declare -A MEM DAEMON_BEFORE DAEMON_WITH
for rt in berth containerd; do
  pid=$BERTHD_PID
  [[ $rt == containerd ]] && pid=$CTD_PID
  [[ -z $(pod_processes "$rt") ]] || die "$rt has pod processes before the memory round"
  DAEMON_BEFORE[$rt]=$(rss_kib "$pid")
  log "$rt: starting $PODS pods"
  # shellcheck disable=SC2046
  client "$rt" pods $(pod_args "$rt") --prefix bench-mem --count "$PODS" --keep >"$WORK/mem-$rt.jsonl"
  # Let what is transient after a start settle (the shims' idle threads retire after 5 s).
  sleep 7
  running=$(containers_running "$rt")
  ((running == PODS)) || die "$rt: $running of $PODS containers running"
  # shellcheck disable=SC2046
  MEM[$rt]=$(sum_memory $(pod_processes "$rt"))
  DAEMON_WITH[$rt]=$(rss_kib "$pid")
  log "$rt: ${MEM[$rt]}"
  client "$rt" clean --prefix bench-mem
  [[ -z $(pod_processes "$rt") ]] || die "$rt left pod processes behind after removing its pods"
done

AFTER_B_PSS=$(pss_kib "$BERTHD_PID") AFTER_C_PSS=$(pss_kib "$CTD_PID")

# ---------------------------------------------------------------------------------------------------
# Report

verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t) ? "met" : "MISSED"}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.2f", k / 1024}'; }
per_pod_mib() { awk -v k="$1" -v n="$PODS" 'BEGIN {printf "%.2f", k / n / 1024}'; }
row() { # row LABEL FIELD: medians of both and their ratio
  local b c
  b=$(med berth "$2") c=$(med containerd "$2")
  printf '  %-26s %8s %11s %9s\n' "$1" "$b" "$c" "$(ratio "$b" "$c")"
}

read -r MB_PSS MB_RSS MB_N MB_NAMES <<<"${MEM[berth]}"
read -r MC_PSS MC_RSS MC_N MC_NAMES <<<"${MEM[containerd]}"
TOTAL_B=$(med berth total_ms) TOTAL_C=$(med containerd total_ms)
START_RATIO=$(ratio "$TOTAL_B" "$TOTAL_C")
CS_B=$(med berth create_start_ms)
EXEC_RATIO=$(ratio "$EXEC_B" "$EXEC_C")
STREAM_RATIO=$(ratio "$STREAM_B" "$STREAM_C")
PSS_B_POD_KIB=$(awk -v k="$MB_PSS" -v n="$PODS" 'BEGIN {printf "%.0f", k / n}')

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT=$OUT/pods-$STAMP.txt
{
  echo "berth pod benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(machine_line)"
  echo "filesystem: roots on $FS_DESC; state dirs on tmpfs"
  echo "load average: at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
  echo "berthd: $BERTHD_DESC (measured from a copy)"
  echo "containerd: $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}'), CRI plugin, overlayfs, cgroupfs; sandbox image $PAUSE"
  echo "image: $IMAGE; pods: $([[ $NETWORK == host ]] && echo "host network" || echo "own network namespace on a CNI bridge (bridge + host-local + portmap)"), pid CONTAINER, ipc POD, cgroup parent /$CGROUP/<runtime>/<pod>, one container 'sleep 3600' logging to a file"
  echo "client: examples/bench_client (one gRPC connection, client-side time per RPC); crictl's own start-up here: ${CRICTL_MEDIAN} ms per call (median of 5 'crictl version')"
  echo
  echo "(1) pod start, median of $RUNS runs each, ms (after one warm-up pod each)"
  printf '  %-26s %8s %11s %9s\n' "" berth containerd ratio
  row "RunPodSandbox" runp_ms
  row "CreateContainer" create_ms
  row "StartContainer" start_ms
  row "create + start" create_start_ms
  row "pod start (all three)" total_ms
  row "StopPodSandbox" stopp_ms
  row "RemovePodSandbox" rmp_ms
  echo "  pod start berth/containerd = $START_RATIO (target <= 0.33: $(verdict "$START_RATIO" 0.3334))"
  echo "  berth create + start = $CS_B ms (target < 20: $(awk -v v="$CS_B" 'BEGIN {print (v < 20) ? "met" : "MISSED"}'))"
  echo "  for context, this kernel's cgroup attach after 0.5 s idle: $ATTACH_MS ms (median of 6; both runtimes pay it per container)"
  echo "  raw pod start, ms: berth $(field berth total_ms | xargs printf '%.1f ')"
  echo "                     containerd $(field containerd total_ms | xargs printf '%.1f ')"
  echo
  echo "(2) ExecSync 'echo hi', median of $EXECS calls (after 5 warm-up calls), ms"
  echo "  berth $EXEC_B (min $(minimum $(cat "$WORK/exec-berth.txt"))), containerd $EXEC_C (min $(minimum $(cat "$WORK/exec-containerd.txt")))"
  echo "  berth/containerd = $EXEC_RATIO (target <= 0.25: $(verdict "$EXEC_RATIO" 0.25))"
  echo "(2b) crictl exec 'true' round trip over SPDY, median of $STREAM_EXECS runs (after 3 warm-up runs), ms"
  echo "  berth $STREAM_B (min $(minimum $(cat "$WORK/stream-berth.txt"))), containerd $STREAM_C (min $(minimum $(cat "$WORK/stream-containerd.txt")))"
  echo "  berth/containerd = $STREAM_RATIO (target <= 0.5: $(verdict "$STREAM_RATIO" 0.5))"
  echo
  echo "(3) memory per pod, $PODS pods running at once ($NETWORK network, one sleep container each)"
  echo "  berth:      PSS $(per_pod_mib "$MB_PSS") MiB/pod ($PSS_B_POD_KIB KiB), RSS $(per_pod_mib "$MB_RSS") MiB/pod ($MB_N processes: $MB_NAMES)"
  echo "  containerd: PSS $(per_pod_mib "$MC_PSS") MiB/pod, RSS $(per_pod_mib "$MC_RSS") MiB/pod ($MC_N processes: $MC_NAMES)"
  echo "  berth/containerd PSS = $(ratio "$MB_PSS" "$MC_PSS"); berth target <= 1 MiB/pod: $(verdict "$PSS_B_POD_KIB" 1024)"
  echo "  daemon RSS growth with the pods: berthd $(awk -v a="${DAEMON_BEFORE[berth]}" -v b="${DAEMON_WITH[berth]}" -v n="$PODS" 'BEGIN {printf "%.0f", (b - a) / n}') KiB/pod, containerd $(awk -v a="${DAEMON_BEFORE[containerd]}" -v b="${DAEMON_WITH[containerd]}" -v n="$PODS" 'BEGIN {printf "%.0f", (b - a) / n}') KiB/pod (not in the per-pod numbers)"
  echo
  echo "(4) daemon idle, freshly started, no pods"
  echo "  berthd:     PSS $(mib "$IDLE_B_PSS") MiB, RSS $(mib "$IDLE_B_RSS") MiB (target PSS < 15 MiB: $(awk -v v="$IDLE_B_PSS" 'BEGIN {print (v < 15 * 1024) ? "met" : "MISSED"}'))"
  echo "  containerd: PSS $(mib "$IDLE_C_PSS") MiB, RSS $(mib "$IDLE_C_RSS") MiB"
  echo "  berthd/containerd PSS = $(ratio "$IDLE_B_PSS" "$IDLE_C_PSS"); after this benchmark (no pods left): berthd PSS $(mib "$AFTER_B_PSS") MiB, containerd $(mib "$AFTER_C_PSS") MiB"
} | tee "$RESULT"
cp "$WORK/start-berth.jsonl" "$OUT/pods-$STAMP-start-berth.jsonl"
cp "$WORK/start-containerd.jsonl" "$OUT/pods-$STAMP-start-containerd.jsonl"
echo "results: $RESULT (raw per-run lines beside it)" >&2
