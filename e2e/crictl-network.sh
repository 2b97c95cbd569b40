#!/usr/bin/env bash
# Pod networking through the node's CNI config (hack/cni-config.sh installs one): two crictl pods
# get distinct IPs, ping each other, the host reaches them, and stopping a pod releases its IP.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"
[[ $(crictl_b info | jq -r '.status.conditions[] | select(.type=="NetworkReady") | .status') == true ]] ||
  fail "NetworkReady is not true: $(crictl_b info | jq -c .status.conditions) (run hack/cni-config.sh)"
pass "NetworkReady=true with the node's CNI config"

declare -A POD CTR IP
for name in net-a net-b; do
  cat > "$WORK/$name.json" <<JSON
{"metadata": {"name": "$name", "namespace": "default", "uid": "uid-$name", "attempt": 0},
 "hostname": "$name", "log_directory": "$WORK/logs"}
JSON
  cat > "$WORK/$name-ctr.json" <<JSON
{"metadata": {"name": "web"}, "image": {"image": "$IMG"}, "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"], "log_path": "$name.log"}
JSON
  POD[$name]=$(crictl_b runp "$WORK/$name.json") || fail "crictl runp $name"
  CTR[$name]=$(crictl_b create "${POD[$name]}" "$WORK/$name-ctr.json" "$WORK/$name.json") || fail "create in $name"
  crictl_b start "${CTR[$name]}" >/dev/null || fail "start in $name"
  IP[$name]=$(crictl_b inspectp "${POD[$name]}" | jq -r .status.network.ip)
  [[ ${IP[$name]} =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "$name has no IPv4: ${IP[$name]}"
done
[[ ${IP[net-a]} != "${IP[net-b]}" ]] || fail "both pods got ${IP[net-a]}"
pass "pods got distinct IPs ${IP[net-a]} and ${IP[net-b]}"

crictl_b exec -s "${CTR[net-a]}" ping -c 1 -W 5 "${IP[net-b]}" >/dev/null || fail "net-a cannot ping net-b"
crictl_b exec -s "${CTR[net-b]}" ping -c 1 -W 5 "${IP[net-a]}" >/dev/null || fail "net-b cannot ping net-a"
pass "the pods ping each other"

for _ in $(seq 50); do curl -sf -m 2 "http://${IP[net-a]}:8080/hostname" >/dev/null && break; sleep 0.1; done
[[ $(curl -sf -m 5 "http://${IP[net-a]}:8080/hostname") == net-a ]] || fail "the host cannot reach ${IP[net-a]}:8080"
crictl_b exec -s "${CTR[net-a]}" grep -q "${IP[net-a]}.*net-a" /etc/hosts || fail "/etc/hosts lacks the pod IP"
pass "the host reaches a pod's HTTP server; /etc/hosts names the pod's IP"

crictl_b stopp "${POD[net-b]}" >/dev/null || fail "stopp net-b"
lease=/var/lib/cni/networks/$(jq -r .name "$(ls /etc/cni/net.d/*.conflist | head -1)")/${IP[net-b]}
[[ ! -e $lease ]] || fail "stopping net-b left its lease $lease"
crictl_b exec -s "${CTR[net-a]}" ping -c 1 -W 1 "${IP[net-b]}" >/dev/null 2>&1 && fail "net-b still answers after stopp"
pass "StopPodSandbox released net-b's IP"
