# PASS/FAIL accounting and pod helpers of e2e/cluster/test.sh (sourced after lib.sh).

PASSED=0 FAILED=0
# check NAME FUNCTION...: runs one check; a check function says why with `bad` and returns 1.
check() {
  local name=$1 ok=0 start=$SECONDS
  shift
  "$@" || ok=$?
  if ((ok == 0)); then
    PASSED=$((PASSED + 1))
    echo "PASS: $name ($((SECONDS - start))s)"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL: $name ($((SECONDS - start))s)"
  fi
}
bad() {
  echo "      $*"
  return 1
}

# pod_json POD, ctr_status POD [CONTAINER]: the API server's view of a pod of $NS.
pod_json() { k -n "$NS" get pod "$1" -o json; }
ctr_status() {
  pod_json "$1" | jq -ce --arg c "${2:-}" '.status.containerStatuses[] | select($c == "" or .name == $c)'
}
# wait_ready SECONDS POD...: every POD is Running with every container ready.
wait_ready() {
  local secs=$1
  shift
  k -n "$NS" wait --for=condition=Ready --timeout="${secs}s" "${@/#/pod/}" >/dev/null 2>&1
}
# node_of POD: the node the pod runs on.
node_of() { k -n "$NS" get pod "$1" -o jsonpath='{.spec.nodeName}'; }
# node_number NODE-NAME: N of berth-nodeN.
node_number() { echo "${1#berth-node}"; }

# pod SPEC-YAML: creates a pod from a manifest on stdin (namespace $NS).
apply() { k -n "$NS" apply -f - >/dev/null; }

# busybox_pod NAME NODE COMMAND [extra container yaml] [extra pod spec yaml]: a one-container
# pod on NODE running `sh -c COMMAND`.
busybox_pod() {
  local name=$1 node=$2 cmd=$3 extra_ctr=${4:-} extra_spec=${5:-}
  apply <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {app: $name}}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  terminationGracePeriodSeconds: 5
$extra_spec
  containers:
  - name: main
    image: $IMG
    command: ["sh", "-c", $(jq -Rn --arg c "$cmd" '$c')]
$extra_ctr
YAML
}

# container_pid POD [CONTAINER]: the host pid of the container's first process (crictl on the
# pod's node).
container_pid() {
  local id n
  id=$(ctr_status "$1" "${2:-}" | jq -r '.containerID | sub("^[^:]*://"; "")')
  n=$(node_number "$(node_of "$1")")
  crictl_n "$n" inspect "$id" | jq -r .info.pid
}
# cgroup_value POD CONTROLLER FILE [CONTAINER]: FILE in the container's v1 cgroup of CONTROLLER.
cgroup_value() {
  local pid path
  pid=$(container_pid "$1" "${4:-}") || return 1
  path=$(awk -F: -v c="$2" '{n = split($2, cs, ","); for (i = 1; i <= n; i++) if (cs[i] == c) print $3}' "/proc/$pid/cgroup")
  [[ -n $path ]] && cat "/sys/fs/cgroup/$2$path/$3"
}
