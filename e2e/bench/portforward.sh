#!/usr/bin/env bash
# Port-forward throughput (not a test): a 100 MB download through `crictl port-forward` from a
# busybox httpd in a pod, against a release berthd and against Debian's containerd + runc in the
# same run (one CNI bridge network for both, e2e/bench/lib.sh), median of N downloads each.
#
#   e2e/bench/portforward.sh [-n N]      (default 5)
#
# Build first: cargo build --release --bins. Needs root, hack/install-deps.sh, the test registry
# (started if down) and the critest images (hack/testimages/build.sh critest: pause:3.9 for
# containerd). Results go to docs/benchmarks.md by hand.
set -euo pipefail
shopt -s inherit_errexit

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BENCH_NAME=portforward.sh
source "$BENCH/lib.sh"
N=5
[[ ${1:-} == -n ]] && N=$2
[[ $N =~ ^[1-9][0-9]*$ ]] || die "-n takes a positive number"
[[ $EUID -eq 0 ]] || die "needs root"
for tool in crictl containerd runc curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: run hack/install-deps.sh"
done
"$ROOT/hack/registry.sh" start >/dev/null
eval "$("$ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
IMAGE=$REG/library/busybox:latest

WORK=$(mktemp -d /tmp/bpf.XXXXXX)
RUN=$(mktemp -d /run/bpf.XXXXXX)
BERTHD_PID="" CTD_PID="" PF_PID=""
cleanup() {
  set +e
  [[ -n $PF_PID ]] && kill "$PF_PID" 2>/dev/null
  stop_side_by_side "$WORK/b" "$WORK/c" "$WORK" "$RUN"
}
trap cleanup EXIT

berthd_config "$WORK/b" "$REG" "$RUN/b"
containerd_config "$WORK/c" "$REG" "$REG/pause:3.9" "$RUN/c"
bridge_network "$WORK/b" "$WORK/c" "$WORK/ipam"
berthd_start "$WORK/b"
containerd_start "$WORK/c"

cat >"$WORK/pod.json" <<JSON
{"metadata": {"name": "pf", "namespace": "default", "uid": "pf-1"}, "log_directory": "$WORK/logs"}
JSON
cat >"$WORK/ctr.json" <<JSON
{"metadata": {"name": "httpd"}, "image": {"image": "$IMAGE"}, "log_path": "httpd.log",
 "command": ["sh", "-c", "mkdir /www && dd if=/dev/zero of=/www/big bs=1M count=100 2>/dev/null && exec httpd -f -p 8080 -h /www"]}
JSON

measure() { # measure NAME SOCKET -> prints the median seconds
  local name=$1 sock=$2 pod ctr port times=()
  local c=(crictl --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock")
  "${c[@]}" pull "$IMAGE" >/dev/null
  pod=$("${c[@]}" runp "$WORK/pod.json")
  ctr=$("${c[@]}" create "$pod" "$WORK/ctr.json" "$WORK/pod.json")
  "${c[@]}" start "$ctr" >/dev/null
  port=$((20000 + RANDOM % 20000))
  "${c[@]}" port-forward "$pod" "$port:8080" >"$WORK/pf-$name.log" 2>&1 &
  PF_PID=$!
  for _ in $(seq 100); do
    curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port/big" && break
    sleep 0.2
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/big" || { cat "$WORK/pf-$name.log" >&2; die "$name: no download through port-forward"; }
  for _ in $(seq "$N"); do
    times+=("$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/big")")
  done
  kill "$PF_PID"; wait "$PF_PID" 2>/dev/null || true; PF_PID=""
  "${c[@]}" rmp -f "$pod" >/dev/null
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

b=$(measure berth "$(berthd_socket "$WORK/b")")
c=$(measure containerd "$(containerd_socket "$WORK/c")")
echo "port-forward 100 MB download, median of $N, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth ($(berthd_build "$ROOT")): ${b} s"
echo "containerd ($(containerd --version | awk '{print $3}')): ${c} s"
python3 -c "print(f'containerd/berth throughput ratio = {float($c)/float($b):.2f} (target >= 1)')"
