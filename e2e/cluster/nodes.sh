# e2e/cluster/test.sh, part 4: the nodes: kubelet's summary API through the API server, a
# restart of one node's berthd, a graceful drain.

summary() {
  local s name
  s=$(k get --raw "/api/v1/nodes/$N1/proxy/stats/summary") || bad "GET nodes/$N1/proxy/stats/summary failed" || return
  jq -e '.node.cpu.usageNanoCores > 0 and .node.memory.workingSetBytes > 0' <<<"$s" >/dev/null ||
    bad "node figures: $(jq -c '{cpu: .node.cpu, memory: .node.memory.workingSetBytes}' <<<"$s")" || return
  read -r name _ < <(web_pod_on "$N1")
  # What `kubectl top pod` shows (metrics-server reads these): CPU in cores and working set.
  jq -e --arg p "$name" --arg ns "$NS" '.pods[] | select(.podRef.name == $p and .podRef.namespace == $ns) |
    .cpu.usageNanoCores != null and .memory.workingSetBytes > 0 and
    (.containers[] | select(.name == "httpd") | .memory.workingSetBytes > 0 and .cpu.usageCoreNanoSeconds > 0)' <<<"$s" >/dev/null ||
    bad "no cpu/memory for $name: $(jq -c --arg p "$name" '.pods[] | select(.podRef.name == $p)' <<<"$s")" || return
  jq -e --arg p "$name" '.pods[] | select(.podRef.name == $p) | .network.rxBytes > 0' <<<"$s" >/dev/null ||
    bad "no network figures for $name (its readiness probes bring it traffic)" || return
  jq -r --arg ns "$NS" '.pods[] | select(.podRef.namespace == $ns) |
    "      top: \(.podRef.name) \((.cpu.usageNanoCores // 0) / 1e6 | floor)m \((.memory.workingSetBytes // 0) / 1024 | floor)Ki"' <<<"$s" | head -4
}
check "/stats/summary through the API server: node, pod and container CPU/memory, pod network" summary

# What the API server knows of node 1's pods: uid, container ids, restart counts, IPs, readiness.
api_view() {
  kn get pods -o json --field-selector "spec.nodeName=$N1,status.phase=Running" |
    jq -c '[.items[] | {uid: .metadata.uid, ip: .status.podIP, ready: ([.status.conditions[] | select(.type == "Ready")][0] | [.status, .lastTransitionTime]),
      c: [.status.containerStatuses[] | [.containerID, .restartCount, .state.running.startedAt]]}] | sort_by(.uid)'
}
ready_since() { k get node "$N1" -o json | jq -c '.status.conditions[] | select(.type == "Ready") | [.status, .lastTransitionTime]'; }

berthd_restart() {
  local before node_before after pid
  before=$(api_view)
  node_before=$(ready_since)
  [[ $(jq length <<<"$before") -ge 3 ]] || bad "too few running pods on $N1 to compare: $before" || return
  pid=$(pid_of berthd-n1) || bad "node 1's berthd is not running" || return
  kill -TERM "$pid"
  wait_for 20 eval "! kill -0 $pid" || bad "berthd did not stop on SIGTERM" || return
  start_node_berthd 1
  sleep 25 # two of kubelet's sync periods and several PLEG relists
  after=$(api_view)
  [[ $after == "$before" ]] || bad "the API server's view of $N1's pods changed: before $before after $after" || return
  [[ $(ready_since) == "$node_before" ]] || bad "node Ready condition changed: $node_before -> $(ready_since)" || return
  # And berth still serves them: exec through the restarted berthd.
  [[ $(kn exec client -- echo alive) == alive ]] || bad "exec after the restart failed" || return
}
source "$CL_ROOT/e2e/cluster/node.sh"
check "restarting node 1's berthd changes nothing the API server sees (pods, containers, restarts, Ready)" berthd_restart

drain() {
  local on_n2
  on_n2=$(kn get pods -l app=web -o json | jq -r --arg n "$N2" '.items[] | select(.spec.nodeName == $n) | .metadata.name')
  [[ -n $on_n2 ]] || bad "no web pod on $N2 before the drain" || return
  k drain "$N2" --ignore-daemonsets --delete-emptydir-data --force --grace-period=5 --timeout=180s >"$TMP/drain.log" 2>&1 ||
    bad "kubectl drain: $(tail -5 "$TMP/drain.log")" || return
  [[ $(k get node "$N2" -o jsonpath='{.spec.unschedulable}') == true ]] || bad "$N2 is not cordoned" || return
  kn wait --for=condition=Available --timeout=120s deployment/web >/dev/null || bad "web not Available after the drain" || return
  wait_for 60 eval '[[ $(kn get pods -l app=web -o json | jq "[.items[] | select(.status.phase == \"Running\" and .spec.nodeName == \"$N1\")] | length") == 4 ]]' ||
    bad "web pods after the drain: $(kn get pods -l app=web -o wide)" || return
  # Node 2's berth stopped and removed every pod of $NS (nothing is left running there).
  wait_for 60 eval '[[ -z $(crictl_n 2 pods -q --namespace "^$NS\$" --state ready) ]]' ||
    bad "berth on $N2 still runs pods of $NS: $(crictl_n 2 pods --namespace "^$NS\$")" || return
  k uncordon "$N2" >/dev/null
}
check "kubectl drain moves every web pod to node 1 and empties node 2's berth" drain
