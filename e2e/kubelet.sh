#!/usr/bin/env bash
# kubelet v1.37 (standalone: static pods, no API server) on a berthd of its own, checked through
# kubelet's own HTTP API and crictl: init containers, exec/http/tcp probes, CrashLoopBackOff,
# OOMKilled, a host-network pod with a host port, a shared PID namespace, a shared emptyDir, CPU
# and memory limits in the container's cgroup, /stats/summary, /containerLogs, /run, a `kill -9`
# of berthd under running pods, and removal of every manifest leaving nothing behind.
# Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any check failed.
#
# kubelet comes from hack/k8s/build.sh (built on first use, ~15 min on 2 cores; cached after).
# It runs in a mount namespace of its own where the six kernel sysctls it insists on read as the
# values it wants, so this shared machine's sysctls stay untouched (on a real node kubelet sets
# them itself); that namespace drops its copies of the mounts kubelet does not need, so it pins
# no one else's overlay or network namespace. Its pods' cgroups live under a cgroup root made for
# this run and removed at the end. On pure cgroup v2 (the e2e/vm guest: e2e/vm/suite.sh runs it)
# kubelet keeps its defaults (no failCgroupV1 override, its own cgroup root) and both berthd and
# kubelet use the cgroup driver BERTH_E2E_CGROUP_DRIVER (cgroupfs or systemd); a check asserts that
# `crictl info` and kubelet name it. BERTH_KUBELET_DIR: a directory holding kubelet (instead of
# building it); BERTH_E2E_TIME_SCALE, BERTH_E2E_KUBELET_SKIP: e2e/kubelet/lib.sh.
# Ports: KUBELET_PORT (10250), KUBELET_READONLY_PORT (10255), KUBELET_HEALTHZ_PORT (10248), all on
# 127.0.0.1; the script fails if one is taken.
source "$(dirname "$0")/lib.sh"
source "$E2E_ROOT/e2e/kubelet/lib.sh"
source "$E2E_ROOT/e2e/kubelet/pods.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
[[ $EUID -eq 0 ]] || fail "kubelet.sh needs root (berthd, kubelet, cgroups)"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
for tool in crictl curl jq go unshare python3; do command -v "$tool" >/dev/null || fail "$tool not found (hack/install-deps.sh)"; done

PORT=${KUBELET_PORT:-10250}
RO_PORT=${KUBELET_READONLY_PORT:-10255}
HZ_PORT=${KUBELET_HEALTHZ_PORT:-10248}
NODE=berth-e2e # kubelet's --hostname-override: static pod NAME runs as NAME-berth-e2e
REG=$BERTH_TEST_REGISTRY
IMG=$REG/library/busybox:latest
TOKEN=emptydir-$RANDOM$RANDOM

for port in "$PORT" "$RO_PORT" "$HZ_PORT"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "127.0.0.1:$port is in use (another kubelet?)"
done

KUBELET_DIR=${BERTH_KUBELET_DIR:-}
[[ -n $KUBELET_DIR ]] || KUBELET_DIR=$("$E2E_ROOT/hack/k8s/build.sh" kubelet) || fail "hack/k8s/build.sh kubelet failed"
KUBELET=$KUBELET_DIR/kubelet

# berthd and berth-shim are linked (or copied) elsewhere, so a rebuild cannot swap them mid-run
# and every berth-shim of this run is recognisable by its executable's path.
[[ -x "$BERTHD" && -x "$(dirname "$BERTHD")/berth-shim" ]] || fail "berthd/berth-shim not built beside $BERTHD (cargo build)"
BIN=$(mktemp -d /tmp/bkbin.XXXXXX)
cp -l "$BERTHD" "$(dirname "$BERTHD")/berth-shim" "$BIN/" 2>/dev/null || cp "$BERTHD" "$(dirname "$BERTHD")/berth-shim" "$BIN/"
BERTHD=$BIN/berthd
SHIM=$BIN/berth-shim

start_berthd "registries:
  \"$REG\":
    insecure: true"
KW=$WORK/kubelet
KUBELET_LOG=$WORK/kubelet.log
CGROOT=berth-e2e-kubelet-$$
KUBELET_PID=
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# crictl warns on every call when it finds no config file; flags give it all it needs.
: > "$WORK/crictl.yaml"
export CRI_CONFIG_FILE=$WORK/crictl.yaml

crictl_b info | jq -e '.status.conditions[] | select(.type == "NetworkReady") | .status' >/dev/null ||
  fail "berthd's NetworkReady is not true: $(crictl_b info | jq -c .status.conditions) (run hack/cni-config.sh)"
crictl_b pull "$IMG" >/dev/null || fail "crictl pull $IMG"

# --- CRI directly: env values that are not UTF-8 (before kubelet runs: it would remove a pod it
# does not know).
env_bytes() {
  local out
  out=$(cd "$E2E_ROOT/e2e/kubelet/crienv" && go build -o "$WORK/crienv" . 2>&1) || bad "go build crienv: $out" || return
  out=$("$WORK/crienv" -socket "$SOCK" -image "$IMG" -logs "$WORK/crienv-logs" 2>&1) || bad "$out" || return
  [[ -z $(crictl_b pods -q) ]] || bad "crienv left a pod" || return
}
check "CRI: an env value with non-UTF-8 bytes reaches the container unchanged" env_bytes

# --- kubelet: cgroup root, configuration, static pods.
mkdir -p "$KW/manifests"
make_cgroup_root
write_kubelet_config
HOSTPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
write_pods
start_kubelet
wait_for 60 eval 'ro /pods || ! kill -0 "$KUBELET_PID"'
ro /pods >/dev/null || { tail -30 "$KUBELET_LOG" >&2; fail "kubelet did not serve /pods on 127.0.0.1:$RO_PORT"; }
kubelet_up >/dev/null || { tail -30 "$KUBELET_LOG" >&2; fail "kubelet is not healthy"; }

STABLE_PODS=(init hostnet sharedpid emptydir limits)
all_ready() {
  local p
  for p in "${STABLE_PODS[@]}"; do
    pod_json "$p" | jq -e '.status.phase == "Running" and all(.status.containerStatuses[]; .ready)' || return 1
  done
}
pods_run() {
  wait_for 120 all_ready || bad "not all of ${STABLE_PODS[*]} Running and ready: $(ro /pods |
    jq -c '[.items[] | {name: .metadata.name, phase: .status.phase, ready: [.status.containerStatuses[]? | {(.name): .ready}]}]')" || return
  local p
  for p in "${STABLE_PODS[@]}"; do
    [[ -n $(sandbox_of "$p") ]] || bad "crictl pods has no ready sandbox for $p-$NODE" || return
  done
}
driver() {
  local got
  got=$(crictl_b info | jq -r .config.cgroup.driver)
  [[ $got == "$CG_DRIVER" ]] || bad "crictl info: cgroup driver $got, want $CG_DRIVER" || return
  grep -q "Using cgroup driver setting received from the CRI runtime.*cgroupDriver=\"$CG_DRIVER\"" "$KUBELET_LOG" ||
    bad "kubelet's log: $(grep -m1 -i 'cgroup driver' "$KUBELET_LOG")" || return
  ! grep -q 'failCgroupV1' "$KW/config.yaml" || ((!CG_V2)) || bad "failCgroupV1 is set on cgroup v2" || return
}
check "crictl info and kubelet (from RuntimeConfig) both use the $CG_DRIVER cgroup driver" driver

check "kubelet runs static pods on berth (Running, ready, a ready sandbox each)" pods_run

init_order() {
  local first second
  first=$(ctr_json init first) || bad "no status of init container first" || return
  second=$(ctr_json init second) || bad "no status of init container second" || return
  jq -e '.state.terminated.exitCode == 0' <<<"$first" >/dev/null || bad "first: $first" || return
  jq -e '.state.terminated.exitCode == 0' <<<"$second" >/dev/null || bad "second did not find first's output: $second" || return
  [[ $(jq -r .state.terminated.finishedAt <<<"$first") < $(jq -r .state.terminated.startedAt <<<"$second") ||
     $(jq -r .state.terminated.finishedAt <<<"$first") == $(jq -r .state.terminated.startedAt <<<"$second") ]] ||
    bad "second started before first finished: $first $second" || return
  local log
  log=$(api "/containerLogs/default/init-$NODE/main") || bad "/containerLogs/default/init-$NODE/main failed" || return
  [[ $log == $'first\nsecond' ]] || bad "main's log (via /containerLogs) is '$log', want first, second" || return
}
check "init containers run in order, before the app container; /containerLogs returns its output" init_order

probes() {
  wait_for 90 eval '[[ $(ctr_json probes flaky | jq -r .restartCount) -ge 2 ]]' ||
    bad "exec liveness: flaky restarted $(ctr_json probes flaky | jq -r .restartCount) times, want >= 2" || return
  ctr_json probes flaky | jq -e '.lastState.terminated.exitCode == 137' >/dev/null ||
    bad "flaky was not killed by its liveness probe: $(ctr_json probes flaky)" || return
  [[ $(crictl_b ps -a -q --pod "$(sandbox_of probes)" --name '^flaky$' | wc -l) -ge 2 ]] ||
    bad "crictl ps -a lacks flaky's restarted containers" || return
  [[ $(ctr_json probes tcpdead | jq -r .restartCount) -ge 1 ]] ||
    bad "tcp liveness on a closed port did not restart tcpdead: $(ctr_json probes tcpdead)" || return
  ctr_json probes web | jq -e '.ready and .restartCount == 0' >/dev/null ||
    bad "http readiness + tcp liveness on a serving port: web $(ctr_json probes web)" || return
  ctr_json probes unready | jq -e '.ready == false and .state.running' >/dev/null ||
    bad "http readiness on a closed port: unready $(ctr_json probes unready)" || return
}
check "probes: exec liveness failure restarts (count grows), tcp liveness failure restarts, http readiness passes/fails" probes

crashloop() {
  wait_for 60 eval 'ctr_json crash crash | jq -e ".state.waiting.reason == \"CrashLoopBackOff\" and .lastState.terminated.exitCode == 3"' ||
    bad "crash: $(ctr_json crash crash)" || return
  api "/containerLogs/default/crash-$NODE/crash?previous=true" | grep -qx crashing ||
    bad "/containerLogs ?previous=true lacks the crashed run's output" || return
}
check "CrashLoopBackOff with the exit code (3) of the last run" crashloop

oomkilled() {
  wait_for 60 eval 'ctr_json oom hog | jq -e ".state.terminated"' || bad "hog never terminated: $(ctr_json oom hog)" || return
  ctr_json oom hog | jq -e '.state.terminated.reason == "OOMKilled" and .state.terminated.exitCode == 137' >/dev/null ||
    bad "hog: $(ctr_json oom hog)" || return
  [[ $(pod_json oom | jq -r .status.phase) == Failed ]] || bad "oom pod phase $(pod_json oom | jq -r .status.phase)" || return
}
check "OOMKilled: a process allocating past its 32Mi limit" oomkilled

hostnet() {
  local out
  out=$(curl -sf --max-time 5 "http://127.0.0.1:$HOSTPORT/index.html") || bad "nothing serves 127.0.0.1:$HOSTPORT" || return
  [[ $out == "host-$TOKEN" ]] || bad "127.0.0.1:$HOSTPORT served '$out'" || return
  [[ $(crictl_b inspectp "$(sandbox_of hostnet)" | jq -r .status.linux.namespaces.options.network) == NODE ]] ||
    bad "the sandbox's network namespace is not the node's" || return
}
check "hostNetwork pod serves on its host port from the node's network namespace" hostnet

sharedpid() {
  local out
  out=$(run sharedpid b "ps -o args") || bad "/run sharedpid b failed" || return
  grep -qx "sleep 3601" <<<"$out" || bad "b does not see a's process: $out" || return
  [[ $(crictl_b inspectp "$(sandbox_of sharedpid)" | jq -r .status.linux.namespaces.options.pid) == POD ]] ||
    bad "the sandbox's pid namespace mode is not POD" || return
  out=$(run init main "ps -o args") || bad "/run init main failed" || return
  ! grep -q "sleep 3601" <<<"$out" || bad "a pod without shareProcessNamespace sees another pod's processes" || return
}
check "shareProcessNamespace: one container sees the other's processes (through kubelet /run)" sharedpid

emptydir() {
  local out
  out=$(run emptydir reader "cat /data/msg") || bad "/run emptydir reader failed" || return
  [[ $out == "$TOKEN" ]] || bad "reader read '$out' from the emptyDir, want $TOKEN" || return
  [[ -f $KW/root/pods/$(pod_json emptydir | jq -r .metadata.uid)/volumes/kubernetes.io~empty-dir/data/msg ]] ||
    bad "the emptyDir is not kubelet's directory" || return
}
check "emptyDir shared between two containers" emptydir

# cgroup_file POD CONTAINER CONTROLLER FILE: the value of FILE in the container's cgroup (on v2
# CONTROLLER is ignored).
cgroup_file() {
  local pid path
  pid=$(crictl_b inspect "$(ctr_id "$1" "$2")" | jq -r .info.pid) || return 1
  if ((CG_V2)); then
    path=$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    [[ -n $path ]] && cat "/sys/fs/cgroup$path/$4"
    return
  fi
  path=$(awk -F: -v c="$3" '{n = split($2, cs, ","); for (i = 1; i <= n; i++) if (cs[i] == c) print $3}' "/proc/$pid/cgroup")
  [[ -n $path ]] && cat "/sys/fs/cgroup/$3$path/$4"
}
# want_file POD CONTAINER CONTROLLER FILE VALUE: the container's FILE holds VALUE.
want_file() {
  local got
  got=$(cgroup_file "$1" "$2" "$3" "$4")
  [[ $got == "$5" ]] || bad "$4 '$got', want '$5'"
}
limits() {
  local uid ctr path want
  uid=$(pod_json limits | jq -r .metadata.uid)
  ctr=$(ctr_id limits capped)
  if ((CG_V2)); then
    path=$(sed -n 's/^0:://p' "/proc/$(crictl_b inspect "$ctr" | jq -r .info.pid)/cgroup")
    # kubelet's pod cgroup; with systemd a slice (dashes of the uid become underscores) and berth's
    # scope in it.
    want=/kubepods/burstable/pod$uid/$ctr
    [[ $CG_DRIVER == systemd ]] &&
      want=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid//-/_}.slice/berth-$ctr.scope
    [[ $path == "$want" ]] || bad "the container's cgroup is $path, want $want" || return
    want_file limits capped cpu cpu.max "25000 100000" || return
    want_file limits capped memory memory.max $((48 << 20)) || return
    want_file limits capped cpu cpu.weight 4 || return # shares 102 on v2's scale
    return
  fi
  path=$(awk -F: '$2 == "memory" {print $3}' "/proc/$(crictl_b inspect "$ctr" | jq -r .info.pid)/cgroup")
  [[ $path == /$CGROOT/kubepods/burstable/pod$uid/* ]] || bad "the container's cgroup $path is not under kubelet's pod cgroup" || return
  want_file limits capped cpu cpu.cfs_quota_us 25000 || return
  want_file limits capped cpu cpu.cfs_period_us 100000 || return
  want_file limits capped memory memory.limit_in_bytes $((48 << 20)) || return
  want_file limits capped cpu cpu.shares 102 || return
}
check "CPU quota, shares and memory limit in the container's cgroup, under kubelet's pod cgroup" limits

stats() {
  local s
  s=$(ro /stats/summary) || bad "/stats/summary failed" || return
  jq -e '.node.cpu.usageNanoCores != null and .node.memory.workingSetBytes > 0' <<<"$s" >/dev/null || bad "node stats: $(jq -c .node.cpu <<<"$s")" || return
  jq -e --arg n "limits-$NODE" '.pods[] | select(.podRef.name == $n) | .containers[] | select(.name == "capped") |
    .memory.workingSetBytes > 0 and .cpu.usageCoreNanoSeconds > 0' <<<"$s" >/dev/null ||
    bad "no cpu/memory stats for limits/capped: $(jq -c --arg n "limits-$NODE" '.pods[] | select(.podRef.name == $n)' <<<"$s")" || return
}
check "/stats/summary: node and container cpu/memory" stats

netstats() {
  local s
  s=$(ro /stats/summary) || bad "/stats/summary failed" || return
  # kubelet's probes alone bring the pod traffic; the default interface or the list may carry it.
  jq -e --arg n "probes-$NODE" '.pods[] | select(.podRef.name == $n) | .network |
    (.rxBytes // 0) > 0 or any(.interfaces[]?; .rxBytes > 0)' <<<"$s" >/dev/null ||
    bad "probes pod network stats: $(jq -c --arg n "probes-$NODE" '.pods[] | select(.podRef.name == $n) | .network' <<<"$s")" || return
}
check "/stats/summary: pod network stats (ListPodSandboxStats)" netstats

podcidr() {
  grep -q '"Updating Pod CIDR".*newPodCIDR="10.88.0.0/16"' "$KUBELET_LOG" ||
    bad "kubelet's log: $(grep -m1 'Pod CIDR update failed' "$KUBELET_LOG")" || return
}
check "UpdateRuntimeConfig: kubelet hands its podCIDR to berth" podcidr

# --- kill -9 berthd under running pods.
# The restart counts of the stable pods' containers, as kubelet reports them.
stable_counts() {
  ro /pods | jq -c --arg node "$NODE" --args '[.items[] | select(.metadata.name as $n | $ARGS.positional | map(. + "-" + $node) | index($n))
    | {pod: .metadata.name, c: [.status.containerStatuses[] | {(.name): .restartCount}]}] | sort_by(.pod)' "${STABLE_PODS[@]}"
}
stable_ctrs() { local p; for p in "${STABLE_PODS[@]}"; do crictl_b ps -q --no-trunc --pod "$(sandbox_of "$p")" --state running; done | sort; }
kill9() {
  local pods_before counts_before ctrs_before
  pods_before=$(crictl_b pods -q --no-trunc | sort)
  ctrs_before=$(stable_ctrs)
  counts_before=$(stable_counts)
  kill -KILL "$BERTHD_PID"
  wait "$BERTHD_PID" 2>/dev/null || true
  sleep 5 # kubelet's PLEG relists against a dead socket
  restart_berthd || bad "berthd did not come back" || return
  sleep 20 # two of kubelet's sync periods
  wait_for 30 all_ready || bad "stable pods not ready after the restart" || return
  [[ $(crictl_b pods -q --no-trunc | sort) == "$pods_before" ]] || bad "sandboxes changed: before $pods_before after $(crictl_b pods -q --no-trunc)" || return
  [[ $(stable_ctrs) == "$ctrs_before" ]] || bad "running containers changed: before $ctrs_before after $(stable_ctrs)" || return
  local counts_after
  counts_after=$(stable_counts)
  [[ $(jq length <<<"$counts_before") == "${#STABLE_PODS[@]}" ]] || bad "restart counts of ${STABLE_PODS[*]}: $counts_before" || return
  [[ $counts_after == "$counts_before" ]] || bad "restart counts changed: $counts_before -> $counts_after" || return
  kubelet_up >/dev/null || bad "kubelet is unhealthy after berthd's restart" || return
}
check "kill -9 berthd, restart: no container restarted, no sandbox recreated" kill9

# --- remove every manifest: nothing may stay behind.
our_shims() {
  local p
  for p in /proc/[0-9]*; do [[ $(readlink "$p/exe" 2>/dev/null) == "$SHIM" ]] && echo "${p#/proc/}"; done
}
# cgroups named after a sandbox or container id of this run.
our_cgroups() { find /sys/fs/cgroup -type d 2>/dev/null | grep -F -f <(grep . <<<"$SEEN_IDS" || true); }
# mounts under berthd's directories (its state/pods mount itself stays until berthd stops).
our_mounts() { awk -v w="$WORK/" 'index($5, w) == 1 && $5 != w "state/pods" {print $5}' /proc/self/mountinfo; }
removal() {
  # The leftover checks below must be able to see what they look for.
  [[ -n $(our_shims) ]] || bad "found no berth-shim of this run before the removal" || return
  [[ -n $(our_cgroups) ]] || bad "found no container cgroup of this run before the removal" || return
  [[ -n $(our_mounts) ]] || bad "found no mount under $WORK before the removal" || return
  rm -f "$KW"/manifests/*.yaml
  # kubelet stops the pods at once; its garbage collector removes them within a minute.
  wait_for 150 eval '[[ -z $(crictl_b pods -q) && -z $(crictl_b ps -a -q) ]]' ||
    bad "left after 150 s: pods $(crictl_b pods -q | tr '\n' ' ') containers $(crictl_b ps -a -q | tr '\n' ' ')" || return
  wait_for 30 eval '[[ $(ro /pods | jq ".items | length") == 0 ]]' || bad "kubelet still lists pods" || return
  local left
  left=$(our_mounts)
  [[ -z $left ]] || bad "mounts left: $left" || return
  wait_for 20 eval '[[ -z $(our_shims) ]]' || bad "berth-shim processes left: $(our_shims)" || return
  wait_for 30 eval '[[ -z $(pod_cgroups) ]]' || bad "pod cgroups left: $(pod_cgroups)" || return
  left=$(our_cgroups | head -5)
  [[ -z $left ]] || bad "cgroups of this run's containers or sandboxes left: $left" || return
}
check "removing every manifest leaves no pod, container, mount, shim or cgroup" removal

kubelet_up >/dev/null || { FAILED=$((FAILED + 1)); echo "FAIL: kubelet died during the run"; }
echo "kubelet.sh: $PASSED passed, $FAILED failed, $SKIPPED skipped (cgroup $( ((CG_V2)) && echo v2 || echo v1), $CG_DRIVER driver)"
if ((FAILED > 0)); then
  logs=$(mktemp -d /tmp/kubelet-e2e-logs.XXXXXX)
  cp "$KUBELET_LOG" "$WORK/berthd.log" "$KW/config.yaml" "$logs/"
  echo "kubelet.sh: kubelet's and berthd's logs and kubelet's config are in $logs"
  exit 1
fi
