#!/usr/bin/env bash
# crictl sees berth as its runtime: `crictl version` names it, `crictl info` shows RuntimeReady.
source "$(dirname "$0")/lib.sh"
command -v crictl >/dev/null || fail "crictl not installed (hack/install-deps.sh)"
start_berthd

out=$(crictl_b version)
grep -qx "RuntimeName:  berth" <<<"$out" || fail "crictl version: $out"
grep -q "RuntimeApiVersion:  v1" <<<"$out" || fail "crictl version: $out"
pass "crictl version names berth"

info=$(crictl_b info)
ready=$(jq -r '.status.conditions[] | select(.type=="RuntimeReady") | .status' <<<"$info")
[[ "$ready" == true ]] || fail "RuntimeReady is $ready: $info"
# NetworkReady follows the node's CNI conf dir: true, or false with the reason kubelet expects.
net=$(jq -r '.status.conditions[] | select(.type=="NetworkReady") | "\(.status) \(.reason)"' <<<"$info")
[[ "$net" == "true " || "$net" == "false NetworkPluginNotReady" ]] || fail "NetworkReady is \"$net\": $info"
jq -e '.config.grpc.socket' <<<"$info" >/dev/null || fail "crictl info lacks berth's config"
pass "crictl info shows RuntimeReady=true"
