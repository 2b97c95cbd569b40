#!/usr/bin/env bash
# Runs every berth check and test: lints, unit and integration tests, end-to-end scripts with
# real crictl (and e2e/fuzz.sh: every fuzz target for 20 s, on stable), and critest (the CRI
# validation suite: in full, its Streaming specs again over WebSocket, and its conformance specs
# with the runc handler). Needs root. Installs its own dependencies and starts the servers its
# tests use.
#
#   hack/test-all.sh           run everything, reusing what earlier runs installed and built
#   hack/test-all.sh --fresh   first remove every cache and piece of state a run relies on
#                              (hack/fresh.sh), so it runs as on a fresh machine
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "test-all: the tests need root (mounts, namespaces, cgroups)" >&2; exit 1; }
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:$HOME/.cargo/bin"

step() { echo; echo "=== $* ($(date +%T))"; }

case "${1:-}" in
  "") ;;
  --fresh) step "fresh machine: removing caches"; hack/fresh.sh ;;
  *) echo "usage: hack/test-all.sh [--fresh]" >&2; exit 2 ;;
esac

step "dependencies"
hack/install-deps.sh
hack/cni-config.sh
# Kubernetes binaries: kubelet for e2e/kubelet.sh, the control plane and etcd for e2e/cluster. Built
# from the Go module proxy on the first run (kubelet ~15 min on 2 cores, the rest ~10 more), then
# taken from /var/cache/berth-k8s. The builds run in the background at the lowest priority
# (hack/k8s/build.sh nices `go build`), on the CPU the lints and tests leave idle; e2e/kubelet.sh
# and the guest wait for kubelet, the cluster step for the rest. Logs: target/k8s-build-*.log.
# Each build is its own session, stopped with the run if the run stops early. A new session is also
# a new scheduler autogroup, whose CPU share is the run's own whatever the processes' nice values:
# the autogroup itself is niced to 19, or each build would take as much CPU as the whole run.
mkdir -p target
background() { # background LOG CMD...: CMD in its own session and autogroup, at the lowest priority
  local log=$1
  shift
  setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true; exec "$@"' bash "$@" >"$log" 2>&1 &
}
background target/k8s-build-kubelet.log hack/k8s/build.sh kubelet
kubelet_build=$!
# The cluster's binaries after kubelet's (sharing its compiled packages through Go's build cache).
# (A finished build stays a zombie until this script waits for it: that counts as finished.)
background target/k8s-build-cluster.log bash -c 'while s=$(ps -o stat= -p "$0") && [[ $s != Z* ]]; do sleep 2; done
  exec hack/k8s/build.sh kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl \
    etcd etcdctl' "$kubelet_build"
cluster_build=$!
trap 'kill -- -$kubelet_build -$cluster_build 2>/dev/null || true' EXIT

# Every image any test or e2e script pulls is built here, before the first test (critest's too:
# tests/network.rs serves the critest nginx image through a host port).
step "test registries and images"
hack/registry.sh start
hack/testimages/build.sh
eval "$(hack/registry.sh env)"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "build"
cargo build --all-targets

step "unit and integration tests"
cargo test --all-targets

e2e_run() { # e2e_run SCRIPT: runs it, counts it, prints its wall time
  local script=$1 started=$SECONDS
  echo "--- $script"
  if bash "$script"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $script"; fi
  echo "--- $script: $((SECONDS - started)) s"
}

# Only e2e/kubelet.sh and the guest (which runs it too) need kubelet: on a fresh machine its build
# is still going when the tests end, so everything else runs first.
step "end-to-end scripts"
passed=0 failed=0
for script in e2e/*.sh; do
  case "$(basename "$script")" in lib.sh | kubelet.sh) continue ;; esac
  e2e_run "$script"
done

# Each run's JUnit report, JSON report, logs and summary stay in target/critest/<run>/. berthd runs
# with NRI enabled and critest gets -nri-socket (e2e/critest/run.sh), so the full run includes the
# 13 NRI specs.
critest_run() { # critest_run NAME [critest args...]
  local name=$1
  shift
  echo "--- critest $name"
  if CRITEST_OUT="$PWD/target/critest/$name" e2e/critest/run.sh "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: critest $name (target/critest/$name/summary.txt)"
  fi
}
step "critest"
critest_run full
critest_run websocket-streaming -ginkgo.focus='\[k8s\.io\] Streaming' \
  -websocket-exec -websocket-attach -websocket-portforward
critest_run runc-conformance -runtime-handler runc -ginkgo.focus='\[Conformance\]'

step "kubelet"
wait "$kubelet_build" || { cat target/k8s-build-kubelet.log; echo "test-all: building kubelet failed" >&2; exit 1; }
e2e_run e2e/kubelet.sh

# This host is cgroup v1 (hybrid): the cgroup tests run again in a QEMU guest on pure v2 with
# systemd (e2e/vm/suite.sh). It fails, counted below, when the guest cannot boot. A guest kernel
# that panics (seen once: an int3 oops in the scheduler under QEMU's multi-threaded TCG) is an
# emulator fault, not a test result: the suite then runs once more, saying so.
vm_suite() {
  BERTH_VM_TIMEOUT=1800 e2e/vm/suite.sh --no-build 2>&1 | tee target/vm-suite.log
  return "${PIPESTATUS[0]}"
}
step "cgroup v2 guest"
if vm_suite; then
  passed=$((passed + 1))
elif grep -q "Kernel panic - not syncing" target/vm-suite.log &&
  echo "test-all: the guest kernel panicked (above); running the guest suite once more" && vm_suite; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAILED: e2e/vm/suite.sh (cgroup v2 guest)"
fi

# A three-node cluster under a real control plane (e2e/cluster/README.md): two berth nodes and a
# containerd node the DaemonSet installer switches to berth. Upstream conformance
# (e2e/cluster/conformance.sh) is a separate command: its build and run do not fit the budget.
step "cluster"
if ! wait "$cluster_build"; then
  cat target/k8s-build-cluster.log
  failed=$((failed + 1))
  echo "FAILED: hack/k8s/build.sh (the cluster's binaries)"
elif e2e/cluster/up.sh && e2e/cluster/test.sh; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAILED: e2e/cluster (up.sh or test.sh)"
fi
if ! e2e/cluster/down.sh; then
  failed=$((failed + 1))
  echo "FAILED: e2e/cluster/down.sh"
fi

echo
echo "e2e, critest, kubelet, guest and cluster: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
