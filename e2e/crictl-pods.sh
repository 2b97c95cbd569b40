#!/usr/bin/env bash
# A busybox pod driven by crictl exactly as an operator would with containerd: runp, create,
# start, ps, inspect, logs, exec -s, environment names that are not shell names (envFrom's), exec -it,
# stop, rm, stopp, rmp. RUNTIME_HANDLER (default "", the built-in executor) picks the pod's runtime
# handler: e2e/crictl-pods-runc.sh runs the same with runc.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"

cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "e2e-pod", "namespace": "default", "uid": "e2e-uid", "attempt": 0},
 "hostname": "e2e-host", "log_directory": "$WORK/logs", "labels": {"suite": "e2e"}}
JSON
cat > "$WORK/ctr.json" <<JSON
{"metadata": {"name": "app"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"],
 "log_path": "app.log", "labels": {"role": "app"}}
JSON

HANDLER=${RUNTIME_HANDLER:-}
POD=$(crictl_b runp --runtime "$HANDLER" "$WORK/pod.json") || fail "crictl runp"
[[ $(crictl_b inspectp "$POD" | jq -r .status.state) == SANDBOX_READY ]] || fail "pod not ready"
[[ $(crictl_b inspectp "$POD" | jq -r .status.runtimeHandler) == "$HANDLER" ]] || fail "pod's runtime handler is not '$HANDLER'"
pass "crictl runp: pod $POD ready (runtime handler '$HANDLER')"

CTR=$(crictl_b create "$POD" "$WORK/ctr.json" "$WORK/pod.json") || fail "crictl create"
crictl_b start "$CTR" >/dev/null || fail "crictl start"
[[ $(crictl_b inspect "$CTR" | jq -r .status.state) == CONTAINER_RUNNING ]] || fail "container not running"
crictl_b ps -q | grep -qx "$CTR" || fail "crictl ps lacks $CTR"
crictl_b ps --label role=app -q | grep -qx "$CTR" || fail "crictl ps --label"
pass "crictl create/start/ps: $CTR running"

for _ in $(seq 50); do crictl_b logs "$CTR" 2>/dev/null | grep -q started && break; sleep 0.1; done
crictl_b logs "$CTR" | grep -qx started || fail "crictl logs: $(crictl_b logs "$CTR" 2>&1)"
pass "crictl logs shows the container's output"

[[ $(crictl_b exec -s "$CTR" hostname) == e2e-host ]] || fail "exec hostname"
[[ $(crictl_b exec -s "$CTR" sh -c 'echo $((6*7))') == 42 ]] || fail "exec arithmetic"
pass "crictl exec -s runs in the container"

# Environment variables whose names are not shell names, as kubelet makes from envFrom (a ConfigMap
# key `data-1`, a prefix `1-`, `$_-`, `#@!`): the upstream [Conformance] ConfigMap/Secret env specs
# run `sh -c env` in e2e-test-images/busybox and expect every one in the output. First `env` itself
# (no shell: berth's part), then through the image's sh (the busybox ash patch, docs/test-fixtures.md).
ENV_IMG=$REG/e2e-test-images/busybox:1.29-2
crictl_b pull "$ENV_IMG" >/dev/null || fail "pull $ENV_IMG (hack/testimages/build.sh critest-busybox)"
WANT_ENV=('data-1=value-1' '1-data-1=value-1' '$_-data-1=value-1' '#@!data-1=value-1' 'ABC_data=value-2')
ENVS=$(printf '%s\n' "${WANT_ENV[@]}" | jq -R '{key: sub("=.*"; ""), value: sub("^[^=]*="; "")}' | jq -cs .)
# env_output NAME CMD...: the output of a container of ENV_IMG running CMD with WANT_ENV.
env_output() {
  local name=$1 c state
  shift
  jq -n --arg name "$name" --arg img "$ENV_IMG" --argjson envs "$ENVS" \
    --argjson cmd "$(printf '%s\n' "$@" | jq -R . | jq -cs .)" '{metadata: {name: $name},
    image: {image: $img}, command: $cmd, envs: $envs, log_path: ($name + ".log")}' > "$WORK/$name.json"
  c=$(crictl_b create "$POD" "$WORK/$name.json" "$WORK/pod.json") || fail "crictl create $name"
  crictl_b start "$c" >/dev/null || fail "crictl start $name"
  for _ in $(seq 100); do
    state=$(crictl_b inspect "$c" | jq -r .status.state)
    [[ $state == CONTAINER_EXITED ]] && break
    sleep 0.1
  done
  [[ $state == CONTAINER_EXITED ]] || fail "$name did not exit: $state"
  crictl_b logs "$c"
  crictl_b rm "$c" >/dev/null || fail "crictl rm $name"
}
direct=$(env_output env-direct env) || exit 1
via_sh=$(env_output env-sh sh -c env) || exit 1
for kv in "${WANT_ENV[@]}"; do
  grep -qxF -- "$kv" <<<"$direct" || fail "'$kv' missing from the environment berth gave (env): $direct"
done
pass "variables with names that are not shell names reach the container's process (env run directly)"
for kv in "${WANT_ENV[@]}"; do
  grep -qxF -- "$kv" <<<"$via_sh" || fail "'$kv' missing from the output of sh -c env in $ENV_IMG: $via_sh"
done
pass "the image's busybox sh passes them on (sh -c env, as the conformance env specs run it)"

# exec -it on a terminal (with runc, the terminal runc makes and hands over its console socket);
# the client sends its size just after the process starts, hence the pause before `stty size`
out=$(script -qec "stty cols 99 rows 33 2>/dev/null; crictl --runtime-endpoint unix://$SOCK exec -it $CTR sh -c '[ -t 0 ] && [ -t 1 ] && echo on-a-terminal; sleep 1; stty size; exit 3'" /dev/null </dev/null | tr -d '\r\000' | sed 's/\^@//g') || true  # crictl exits 1: the command's exit code was 3
grep -qx on-a-terminal <<<"$out" || fail "exec -it has no terminal: $out"
grep -qx '33 99' <<<"$out" || fail "exec -it terminal size: $out"
grep -q 'exit code 3' <<<"$out" || fail "exec -it exit code: $out"
pass "crictl exec -it runs on a terminal of the client's size and reports the exit code"

crictl_b stop -t 5 "$CTR" >/dev/null || fail "crictl stop"
st=$(crictl_b inspect "$CTR")
[[ $(jq -r .status.state <<<"$st") == CONTAINER_EXITED ]] || fail "not exited after stop"
[[ $(jq -r .status.exitCode <<<"$st") == 0 ]] || fail "SIGTERM trap should exit 0: $(jq .status <<<"$st")"
crictl_b logs "$CTR" | grep -qx bye || fail "the TERM trap did not run"
pass "crictl stop delivers SIGTERM (exit 0 from the trap)"

crictl_b rm "$CTR" >/dev/null || fail "crictl rm"
[[ -z $(crictl_b ps -a -q) ]] || fail "container still listed"
crictl_b stopp "$POD" >/dev/null || fail "crictl stopp"
[[ $(crictl_b inspectp "$POD" | jq -r .status.state) == SANDBOX_NOTREADY ]] || fail "pod not NotReady"
crictl_b rmp "$POD" >/dev/null || fail "crictl rmp"
[[ -z $(crictl_b pods -q) ]] || fail "pod still listed"
left=$(awk -v w="$WORK" '$5 ~ "^"w && $5 != w"/state/pods"' /proc/self/mountinfo)
[[ -z $left ]] || fail "mounts left: $left"
if [[ -n $HANDLER ]]; then
  [[ -z $(ls -A "$WORK/state/$HANDLER" 2>/dev/null) ]] || fail "$HANDLER state left: $(ls "$WORK/state/$HANDLER")"
fi
pass "crictl stop/rm/stopp/rmp clean up everything"
