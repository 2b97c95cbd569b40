#!/usr/bin/env bash
# Workloads on the cluster e2e/cluster/up.sh started, driven with kubectl through the API server:
# scheduling over both nodes, Services through kube-proxy, the streaming APIs (logs -f, exec over
# WebSocket, exec -it, attach, port-forward, cp), Jobs, probes, volumes, RuntimeClass, user
# namespaces, in-place resize, /stats/summary, a berthd restart, a node drain, and berth's
# DaemonSet installer switching the containerd node to berth.
# Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any check failed.
# Works in namespace e2e (made here, removed at the end).
source "$(dirname "$0")/lib.sh"
source "$CL_ROOT/e2e/cluster/checks.sh"
[[ $EUID -eq 0 ]] || cl_die "test.sh needs root"
k get --raw /readyz >/dev/null 2>&1 || cl_die "no cluster answers (e2e/cluster/up.sh first)"
eval "$("$CL_ROOT/hack/registry.sh" env)"
# Upstream busybox configuration (Debian's busybox-static lacks a working wget).
IMG=$BERTH_TEST_REGISTRY/e2e-test-images/busybox:1.29-2
N1=$(node_name 1) N2=$(node_name 2)
export NS=e2e
TMP=$(mktemp -d /tmp/berth-cl-test.XXXXXX)
BG_PIDS=()
finish() {
  local status=$? pid
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  k uncordon "$N2" >/dev/null 2>&1 || true
  rm -rf "$TMP"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

k delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
k create namespace "$NS" >/dev/null
wait_for 30 k -n "$NS" get serviceaccount default || cl_die "namespace $NS has no default service account"
kn() { k -n "$NS" "$@"; }

source "$CL_ROOT/e2e/cluster/workloads.sh"
source "$CL_ROOT/e2e/cluster/streaming.sh"
source "$CL_ROOT/e2e/cluster/pods.sh"
source "$CL_ROOT/e2e/cluster/nodes.sh"
source "$CL_ROOT/e2e/cluster/installer.sh"

echo "test.sh: $PASSED passed, $FAILED failed"
((FAILED == 0)) || { echo "test.sh: logs in $LOGS"; exit 1; }
