#!/usr/bin/env bash
# critest's own benchmarks (`critest -benchmark`: pod, container and image lifecycles, and a pod +
# container start), run in one go against a release berthd and against Debian's containerd + runc
# (CRI plugin on its own config, root, state and socket), with the same parameters and the same
# images from the local registry, and the same CNI bridge network (pods get their own network
# namespace, as critest's pods ask). Not a test: it prints and keeps the numbers, per operation the
# median of each runtime and their ratio; docs/benchmarks.md ("critest -benchmark") keeps results.
#
#   e2e/bench/critest.sh [-n N]        N lifecycles per benchmark (default 30)
#
# Build first: cargo build --release --bins. Needs root, hack/install-deps.sh and the critest images
# (hack/testimages/build.sh critest). Results: $BENCH_OUT (default /tmp/berth-bench)/critest/
# {berth,containerd}/*.json (critest's data) and summary.txt.
set -euo pipefail
shopt -s inherit_errexit

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BENCH_NAME=critest.sh
source "$BENCH/lib.sh"
OUT=${BENCH_OUT:-/tmp/berth-bench}/critest
N=30
while (($#)); do
  case $1 in
    -n) N=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || die "-n takes a positive number"
[[ $EUID -eq 0 ]] || die "needs root"
[[ -x $BERTHD ]] || die "no berthd at $BERTHD: cargo build --release --bins"
for tool in critest crictl containerd runc python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: run hack/install-deps.sh"
done

"$ROOT/hack/registry.sh" start >/dev/null
eval "$("$ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
BUSYBOX=$REG/e2e-test-images/busybox:1.29-2
NGINX=$REG/e2e-test-images/nginx:1.14-2
curl -sf "http://$REG/v2/e2e-test-images/busybox/manifests/1.29-2" -o /dev/null ||
  die "$BUSYBOX is not in the registry: run hack/testimages/build.sh critest"

WORK=$(mktemp -d /tmp/bc.XXXXXX)
RUN="" BERTHD_PID="" CTD_PID=""
cleanup() {
  stop_side_by_side "$WORK/b" "$WORK/c" "$WORK" "$RUN"
}
trap cleanup EXIT

mkdir -p "$OUT"
rm -rf "$OUT"/{berth,containerd}
cat >"$WORK/params.yaml" <<YAML
containersNumber: $N
containersNumberParallel: 1
podsNumber: $N
podsNumberParallel: 1
imagesNumber: $N
imagesNumberParallel: 1
imagePullingBenchmarkImage: $BUSYBOX
imageListingBenchmarkImages: [$BUSYBOX, $NGINX]
YAML
cat >"$WORK/images.yaml" <<YAML
defaultTestContainerImage: $BUSYBOX
webServerTestImage: $NGINX
YAML

run_critest() { # run_critest NAME SOCKET
  mkdir -p "$OUT/$1"
  log "critest -benchmark against $1"
  (cd "$WORK" && critest -benchmark -runtime-endpoint "unix://$2" -image-endpoint "unix://$2" \
    -benchmarking-params-file "$WORK/params.yaml" -test-images-file "$WORK/images.yaml" \
    -benchmarking-output-dir "$OUT/$1" -ginkgo.no-color) >"$OUT/$1/critest.log" 2>&1 ||
    { tail -n 30 "$OUT/$1/critest.log" >&2; die "critest -benchmark failed against $1"; }
}

RUN=$(mktemp -d /run/bcr.XXXXXX)
berthd_config "$WORK/b" "$REG" "$RUN/b"
containerd_config "$WORK/c" "$REG" "$REG/pause:3.9" "$RUN/c"
bridge_network "$WORK/b" "$WORK/c" "$WORK/ipam"
berthd_start "$WORK/b"
run_critest berth "$(berthd_socket "$WORK/b")"
stop_pid "$BERTHD_PID" berthd
BERTHD_PID=""

containerd_start "$WORK/c"
run_critest containerd "$(containerd_socket "$WORK/c")"

{
  echo "critest -benchmark, N=$N per benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(machine_line)"
  echo "berth: $(berthd_build "$ROOT")"
  echo "containerd: $(containerd --version)"
  python3 "$BENCH/critest_summary.py" "$OUT/berth" "$OUT/containerd"
} | tee "$OUT/summary.txt"
