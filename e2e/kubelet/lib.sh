# Helpers of e2e/kubelet.sh (sourced after e2e/lib.sh): per-check PASS/FAIL accounting, kubelet's
# configuration and start in a mount namespace of its own, the cleanup trap, and kubelet API calls.

PASSED=0 FAILED=0 SKIPPED=0 SEEN_IDS=""
# The cgroup setup: v1 (a hybrid host: kubelet's pods under a cgroup root made for the run) or
# pure v2 (the e2e/vm guest: kubelet's default root, kubepods or kubepods.slice), and the driver
# berthd and kubelet use (BERTH_E2E_CGROUP_DRIVER; systemd needs v2).
CG_V2=0
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] && CG_V2=1
CG_DRIVER=${BERTH_E2E_CGROUP_DRIVER:-cgroupfs}
[[ $CG_DRIVER == cgroupfs || ($CG_DRIVER == systemd && $CG_V2 == 1) ]] ||
  fail "cgroup driver $CG_DRIVER: cgroupfs, or systemd on a pure cgroup v2 host (e2e/vm/suite.sh)"
# BERTH_E2E_TIME_SCALE multiplies every wait and HTTP timeout (the e2e/vm guest runs 18-45x
# slower); BERTH_E2E_KUBELET_SKIP names check functions not to run.
TIME_SCALE=${BERTH_E2E_TIME_SCALE:-1}
# Every sandbox and container id this run has seen (for the leftover-cgroup check at the end).
remember_ids() {
  SEEN_IDS=$( { echo "$SEEN_IDS"; crictl_b pods -q --no-trunc; crictl_b ps -a -q --no-trunc; } 2>/dev/null | grep . | sort -u || true)
}
# check NAME FUNCTION...: runs one check; a check function reports why with `bad` and returns 1.
check() {
  local name=$1
  shift
  if [[ " ${BERTH_E2E_KUBELET_SKIP:-} " == *" $1 "* ]]; then
    SKIPPED=$((SKIPPED + 1))
    echo "SKIP: $name"
    return
  fi
  local ok=0
  "$@" || ok=$?
  remember_ids
  if ((ok == 0)); then
    PASSED=$((PASSED + 1))
    echo "PASS: $name"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL: $name"
  fi
}
bad() {
  echo "      $*"
  return 1
}
# wait_for SECONDS COMMAND...: polls every half second.
wait_for() {
  local deadline=$((SECONDS + $1 * TIME_SCALE))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# The v1 hierarchies kubelet and berth use (on a hybrid host, not the unified one).
cgroup_hierarchies() { find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d ! -name unified; }

# kubelet's pod cgroups: directories pod<uid> (cgroupfs), slices kubepods-*pod<uid>.slice (systemd).
pod_cgroups() {
  if ((CG_V2)); then
    find /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice -mindepth 1 -type d \
      \( -name 'pod*' -o -name '*-pod*.slice' \) 2>/dev/null
  else
    find /sys/fs/cgroup/*/"$CGROOT" -type d -name 'pod*' 2>/dev/null
  fi
}

# make_cgroup_root: the cgroup kubelet's pods live under (kubelet requires it to exist), in every
# v1 hierarchy. On v2 kubelet's default root, which no other kubelet may be using.
make_cgroup_root() {
  local h
  if ((CG_V2)); then
    # QoS slices another berth run started may stay; pod cgroups mean a kubelet runs here.
    [[ -z $(pod_cgroups) ]] || fail "kubelet pod cgroups exist: another kubelet runs here: $(pod_cgroups)"
    return
  fi
  for h in $(cgroup_hierarchies); do
    mkdir "$h/$CGROOT" || fail "mkdir $h/$CGROOT"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" > "$h/$CGROOT/cpuset.cpus"
      cat "$h/cpuset.mems" > "$h/$CGROOT/cpuset.mems"
    fi
  done
}

# cleanup (the EXIT trap): stops kubelet, removes the pods through berthd (restarting it if the
# kill -9 check left it down), stops berthd, removes the run's cgroup root in every hierarchy and
# the binaries' copy.
cleanup() {
  local status=$? h
  if [[ -n $KUBELET_PID ]] && kill -0 "$KUBELET_PID" 2>/dev/null; then
    kill -TERM "$KUBELET_PID"
    for _ in $(seq 20); do kill -0 "$KUBELET_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$KUBELET_PID" 2>/dev/null || true
    wait "$KUBELET_PID" 2>/dev/null || true
  fi
  if ! kill -0 "$BERTHD_PID" 2>/dev/null && [[ -d $WORK/root ]]; then restart_berthd 2>/dev/null || true; fi
  stop_berthd
  for h in /sys/fs/cgroup/*; do
    [[ -d $h/$CGROOT ]] || continue
    find "$h/$CGROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $h/$CGROOT ]] || echo "kubelet.sh: could not remove cgroup $h/$CGROOT" >&2
  done
  if ((CG_V2)); then # kubelet leaves its QoS cgroups behind
    if [[ $CG_DRIVER == systemd ]]; then
      systemctl stop kubepods.slice 2>/dev/null || true
    elif [[ -d /sys/fs/cgroup/kubepods ]]; then
      find /sys/fs/cgroup/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
  fi
  find /var/log/containers -maxdepth 1 -lname "$KW/*" -delete 2>/dev/null || true
  rm -rf "$BIN"
  exit "$status"
}

# restart_berthd: berthd again on the same config and directories (after kill -9).
restart_berthd() {
  "$BERTHD" --config "$WORK/config.yaml" >> "$WORK/berthd.log" 2>&1 &
  BERTHD_PID=$!
  wait_for 20 crictl_b info || { tail -20 "$WORK/berthd.log" >&2; return 1; }
}

# write_kubelet_config: the KubeletConfiguration of a standalone kubelet on this run's berthd.
write_kubelet_config() {
  cat > "$KW/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
$( ((CG_V2)) || printf 'failCgroupV1: false\ncgroupRoot: /%s' "$CGROOT" )
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: $CG_DRIVER
staticPodPath: $KW/manifests
fileCheckFrequency: 1s
syncFrequency: 10s
podLogsDir: $KW/pod-logs
podCIDR: 10.88.0.0/16
address: 127.0.0.1
port: $PORT
readOnlyPort: $RO_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $HZ_PORT
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
featureGates:
  PodAndContainerStatsFromCRI: true
YAML
}

# start_kubelet: kubelet in a mount namespace of its own, logging to $KUBELET_LOG; sets
# KUBELET_PID. The namespace first drops its copies of the mounts kubelet has no use for (so it
# pins no one's overlay, shm or network namespace: all but /, the system directories, /run itself
# (systemd's and D-Bus's sockets, for the systemd cgroup driver), and the mounts holding $WORK and
# kubelet's binary), deepest first, then shows the kernel tunables
# kubelet would otherwise write to the host (container_manager_linux.go) with the values it wants.
start_kubelet() {
  local t file setup
  declare -A tunables=([vm/overcommit_memory]=1 [vm/panic_on_oom]=0 [kernel/panic]=10
    [kernel/panic_on_oops]=1 [kernel/keys/root_maxkeys]=1000000 [kernel/keys/root_maxbytes]=25000000)
  mkdir -p "$KW/sysctl"
  awk -v keep="$WORK $(dirname "$KUBELET")" '
    $5 ~ "^/$|^/(dev|proc|sys|etc|usr|lib[^/]*|bin|sbin|mnt)(/|$)" || $5 == "/run" { next }
    { n = split(keep, k, " "); for (i = 1; i <= n; i++) if (index(k[i] "/", $5 "/") == 1) next; print $5 }
  ' /proc/self/mountinfo | sort -r > "$KW/drop-mounts"
  setup="while read -r m; do umount -l \"\$m\" 2>/dev/null; done < $KW/drop-mounts; "
  for t in "${!tunables[@]}"; do
    file=$KW/sysctl/${t//\//.}
    echo "${tunables[$t]}" > "$file"
    setup+="mount --bind $file /proc/sys/$t && "
  done
  unshare --mount --propagation slave sh -c "${setup}exec \"\$0\" \"\$@\"" "$KUBELET" \
    --config "$KW/config.yaml" --root-dir "$KW/root" --cert-dir "$KW/pki" \
    --hostname-override "$NODE" --v=2 > "$KUBELET_LOG" 2>&1 &
  KUBELET_PID=$!
}

# kubelet's read-only port, its authenticated port (anonymous, AlwaysAllow), and /run: ExecSync
# through kubelet (run POD CONTAINER CMD; kubelet splits CMD at spaces).
ro() { curl -sf --max-time $((5 * TIME_SCALE)) "http://127.0.0.1:$RO_PORT$1"; }
api() { curl -skf --max-time $((10 * TIME_SCALE)) "https://127.0.0.1:$PORT$1"; }
run() { curl -skf --max-time $((15 * TIME_SCALE)) -G -X POST --data-urlencode "cmd=$3" "https://127.0.0.1:$PORT/run/default/$1-$NODE/$2"; }
kubelet_up() { kill -0 "$KUBELET_PID" 2>/dev/null && ro /healthz; }
# pod_json POD, ctr_json POD CONTAINER: kubelet's view (/pods) of a static pod and of one of its
# containers (init containers included).
pod_json() { ro /pods | jq -ce --arg n "$1-$NODE" '.items[] | select(.metadata.name == $n)'; }
ctr_json() {
  pod_json "$1" | jq -ce --arg c "$2" \
    '.status | (.containerStatuses // []) + (.initContainerStatuses // []) | .[] | select(.name == $c)'
}
# berth's view (crictl): a static pod's ready sandbox, a running container's id.
sandbox_of() { crictl_b pods -q --no-trunc --label "io.kubernetes.pod.name=$1-$NODE" --state ready; }
ctr_id() { crictl_b ps -q --no-trunc --pod "$(sandbox_of "$1")" --name "^$2\$" --state running; }
