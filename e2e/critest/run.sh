#!/usr/bin/env bash
# Runs cri-tools' critest (v1.37.0: the CRI validation suite kubelet's runtimes are held to) against a
# real berthd, with every image critest pulls built here from Debian packages and served by the local
# registry.
#
#   e2e/critest/run.sh [critest args...]        e.g. -ginkgo.focus='Image Manager'
#   e2e/critest/run.sh -runtime-handler runc ...  the same through runc (a handler in berthd's default config)
#
# 1. hack/install-deps.sh (critest, crictl, packages), hack/cni-config.sh (the node's bridge network
#    in /etc/cni/net.d, unless one is there), then `cargo build --bins` unless BERTHD is set;
# 2. hack/testimages/build.sh critest: builds and pushes the images (cached; about 3 minutes the first
#    time, under a second afterwards);
# 3. starts berthd on a temp dir with 127.0.0.1:5000 as a plain-HTTP registry and as the mirror of
#    registry.k8s.io, gcr.io and k8s.gcr.io, the registries critest's image names point at;
# 4. runs critest on berthd's socket. Into $CRITEST_OUT (default /tmp/berth-critest) go junit.xml,
#    report.json (ginkgo's JSON report), critest.log (its output), berthd.log and summary.txt (one line
#    per test: state, name, first line of the failure; by e2e/critest/summary.py).
# On exit berthd, its pods and its temp dir are removed (KEEP_WORK=1 keeps the dir). The exit status is
# that of the check against e2e/critest/EXPECTED_SKIPS.md (summary.py --expect): 0 when every spec
# that ran passed or failed/skipped as listed there. With -benchmark, critest's benchmarks run instead
# and their data goes to $CRITEST_OUT/benchmark; the exit status is critest's.
#
# CRITEST_PREPARED=1 (with BERTHD) skips steps 1 and 2: the e2e/vm guest runs critest on what the host
# installed, built and pushed (e2e/vm/critest.sh). CRITEST_CONTEXT=NAME adds the ```expect NAME block
# of EXPECTED_SKIPS.md to the check (`vm`: what the guest cannot pass).
#
# CRITEST_REGISTRY_MODE=prefix runs critest with -registry-prefix 127.0.0.1:5000 (and the default
# container and web server images renamed to match) instead of the mirrors, for comparison only: in
# v1.37.0 that flag drops the tag or digest of every name it rewrites (all pulls become :latest) and
# renames only what critest pulls, not the names it then creates containers from and compares, so
# most tests fail for reasons of critest's own (e2e/critest/STATUS.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CRITEST_OUT=${CRITEST_OUT:-/tmp/berth-critest}
MODE=${CRITEST_REGISTRY_MODE:-mirror}
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin"

[[ $EUID -eq 0 ]] || { echo "critest/run.sh: berthd needs root" >&2; exit 1; }
[[ $MODE == mirror || $MODE == prefix ]] || { echo "critest/run.sh: CRITEST_REGISTRY_MODE is mirror or prefix" >&2; exit 1; }

if [[ -n ${CRITEST_PREPARED:-} ]]; then
  # The caller did steps 1 and 2 (e2e/vm/critest.sh: on the host, before the guest boots).
  [[ -n ${BERTHD:-} ]] || { echo "critest/run.sh: CRITEST_PREPARED needs BERTHD" >&2; exit 1; }
else
  echo "=== dependencies"
  "$ROOT/hack/install-deps.sh"
  "$ROOT/hack/cni-config.sh"
  if [[ -z ${BERTHD:-} ]]; then
    (cd "$ROOT" && cargo build --bins)
  fi

  echo "=== images"
  "$ROOT/hack/registry.sh" start >/dev/null
  "$ROOT/hack/testimages/build.sh" critest 2>&1 | sed '/^  /d'
fi
eval "$("$ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY

# shellcheck source=../lib.sh
source "$ROOT/e2e/lib.sh"
rm -rf "$CRITEST_OUT"
mkdir -p "$CRITEST_OUT"

if [[ $MODE == mirror ]]; then
  REGISTRIES="registries:
  \"$REG\": {insecure: true}
  registry.k8s.io: {mirrors: [\"http://$REG\"]}
  gcr.io: {mirrors: [\"http://$REG\"]}
  k8s.gcr.io: {mirrors: [\"http://$REG\"]}"
else
  REGISTRIES="registries:
  \"$REG\": {insecure: true}"
fi

# critest's mount propagation specs bind-mount ${TMPDIR:-/tmp}/test<pod id>/mnt on the host and leave
# it behind when they fail: the ones this run made are unmounted at the end.
critest_mounts() {
  awk -v t="${TMPDIR:-/tmp}/test" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -u
}
critest_mounts >"$CRITEST_OUT/.mounts-before"

# critest's NRI specs connect stub plugins to berth's NRI socket (-nri-socket). Their plugins hold
# Synchronize open for 2 s while containers are created: the request timeout leaves room for it.
# (A short path of its own: a unix socket path holds at most 107 bytes, $CRITEST_OUT may be long.)
NRI_DIR=$(mktemp -d /tmp/berth-nri.XXXXXX)
NRI_SOCK="$NRI_DIR/nri.sock"
NRI="nri:
  enable: true
  socket_path: $NRI_SOCK
  request_timeout: 10s"

echo "=== berthd ($MODE mode)"
start_berthd "$REGISTRIES
$NRI"
finish() {
  local status=$?
  [[ -n ${WORK:-} && -f $WORK/berthd.log ]] && cp "$WORK/berthd.log" "$CRITEST_OUT/berthd.log"
  stop_berthd
  rm -rf "$NRI_DIR"
  comm -13 "$CRITEST_OUT/.mounts-before" <(critest_mounts) | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -f "$CRITEST_OUT/.mounts-before"
  exit "$status"
}
trap finish EXIT
echo "berthd $BERTHD_PID on $SOCK (work dir $WORK)"

ARGS=(
  -runtime-endpoint "unix://$SOCK" -image-endpoint "unix://$SOCK"
  -ginkgo.junit-report "$CRITEST_OUT/junit.xml" -ginkgo.json-report "$CRITEST_OUT/report.json"
  -ginkgo.no-color -ginkgo.timeout 4h -nri-socket "$NRI_SOCK"
)
if [[ $MODE == prefix ]]; then
  cat >"$CRITEST_OUT/test-images.yaml" <<YAML
defaultTestContainerImage: $REG/e2e-test-images/busybox:1.29-2
webServerTestImage: $REG/e2e-test-images/nginx:1.14-2
YAML
  ARGS+=(-registry-prefix "$REG" -test-images-file "$CRITEST_OUT/test-images.yaml")
fi

benchmark=false
for arg in "$@"; do [[ $arg == -benchmark || $arg == --benchmark ]] && benchmark=true; done
if $benchmark; then
  mkdir -p "$CRITEST_OUT/benchmark"
  ARGS+=(-benchmarking-output-dir "$CRITEST_OUT/benchmark")
fi

echo "=== critest ${ARGS[*]} $*"
set +e
(cd "$CRITEST_OUT" && critest "${ARGS[@]}" "$@") 2>&1 | tee "$CRITEST_OUT/critest.log"
status=${PIPESTATUS[0]}
set -e
echo "critest exit status $status; reports in $CRITEST_OUT"
if $benchmark; then
  exit "$status"
fi
[[ -s $CRITEST_OUT/report.json ]] || { echo "critest/run.sh: critest wrote no report" >&2; exit 1; }
set +e
python3 "$HERE/summary.py" "$CRITEST_OUT/report.json" --expect "$HERE/EXPECTED_SKIPS.md" \
  ${CRITEST_CONTEXT:+--context "$CRITEST_CONTEXT"} >"$CRITEST_OUT/summary.txt"
check=$?
set -e
echo
grep -E -A1 '^UNEXPECTED' "$CRITEST_OUT/summary.txt" | grep -v '^--$' || true
grep -E '^[0-9]+ [a-z]+(, |$)|^check:' "$CRITEST_OUT/summary.txt"
exit "$check"
