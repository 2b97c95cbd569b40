#!/usr/bin/env bash
# A pod with its own user namespace (kubelet's hostUsers: false) through real crictl: the mapping
# kubelet would choose, root inside and an unprivileged host id outside, id-mapped image files,
# exec (SPDY), a terminal, attach and port-forward into the pod's network namespace, which the
# user namespace owns; a host-network pod with its own user namespace (the host's network and a
# read-only /sys); then the pods are removed without leftovers.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"
crictl_b info | grep -q '"user_namespaces": true' || fail "Status does not claim user namespaces: $(grep -i 'user namespaces' "$WORK/berthd.log")"
pass "Status claims user namespaces for the built-in handler"

USERNS='{"mode": 0, "uids": [{"host_id": 300000, "container_id": 0, "length": 65536}],
         "gids": [{"host_id": 300000, "container_id": 0, "length": 65536}]}'
cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "userns-pod", "namespace": "default", "uid": "userns-uid", "attempt": 0},
 "hostname": "userns-host", "log_directory": "$WORK/logs",
 "linux": {"security_context": {"namespace_options": {"pid": 1, "userns_options": $USERNS}}}}
JSON
cat > "$WORK/ctr.json" <<JSON
{"metadata": {"name": "app"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "mkdir -p /www && echo hello-from-userns > /www/index.html && httpd -f -p 8080 -h /www"],
 "linux": {"security_context": {"namespace_options": {"pid": 1, "userns_options": $USERNS}}},
 "log_path": "app.log"}
JSON
cat > "$WORK/cat.json" <<JSON
{"metadata": {"name": "cat"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "while read line; do echo \"got:\$(id -u):\$line\"; done"],
 "linux": {"security_context": {"namespace_options": {"pid": 1, "userns_options": $USERNS}}},
 "stdin": true, "log_path": "cat.log"}
JSON
POD=$(crictl_b runp "$WORK/pod.json") || fail "crictl runp"
CTR=$(crictl_b create "$POD" "$WORK/ctr.json" "$WORK/pod.json") || fail "crictl create"
crictl_b start "$CTR" >/dev/null || fail "crictl start"
CAT=$(crictl_b create "$POD" "$WORK/cat.json" "$WORK/pod.json") || fail "crictl create cat"
crictl_b start "$CAT" >/dev/null || fail "crictl start cat"

out=$(crictl_b exec "$CTR" sh -c 'cat /proc/self/uid_map; id -u; stat -c %u /bin/busybox') || fail "exec"
[[ $(echo $out) == "0 300000 65536 0 0" ]] || fail "inside: $out"
pass "exec: the pod's mapping, uid 0, image files owned by root"

pid=$(pgrep -f 'httpd -f -p 8080 -h /www' | while read -r p; do
  [[ "$(readlink /proc/$p/ns/user)" == "$(readlink /proc/self/ns/user)" ]] || echo "$p"; done | head -1)
[[ -n $pid ]] || fail "no httpd in another user namespace"
uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status)
[[ $uid == 300000 ]] || fail "httpd runs as host uid $uid"
pass "the container's processes are host uid 300000"

out=$(script -qec "crictl --runtime-endpoint unix://$SOCK exec -it $CTR sh -c '[ -t 0 ] && echo on-a-terminal; id -u'" /dev/null </dev/null | tr -d '\r\000' | sed 's/\^@//g')
grep -qx on-a-terminal <<<"$out" && grep -qx 0 <<<"$out" || fail "exec -it: $out"
pass "exec -it runs on a terminal, as root of the namespace"

out=$( (sleep 1; echo ping; sleep 1) | timeout -s KILL 5 crictl --runtime-endpoint "unix://$SOCK" attach -i "$CAT" 2>/dev/null | head -1) || true
[[ $out == "got:0:ping" ]] || fail "attach: '$out'"
pass "attach reaches the container"

LPORT=$((19080 + RANDOM % 1000))
crictl --runtime-endpoint "unix://$SOCK" port-forward "$POD" "$LPORT:8080" >"$WORK/pf.log" 2>&1 &
PF=$!
for _ in $(seq 50); do grep -q Forwarding "$WORK/pf.log" && break; sleep 0.1; done
body=$(curl -s --max-time 5 "http://127.0.0.1:$LPORT/index.html") || true
kill $PF 2>/dev/null || true; wait $PF 2>/dev/null || true
[[ $body == hello-from-userns ]] || fail "port-forward: '$body' $(cat "$WORK/pf.log")"
pass "port-forward reaches a server in the user namespace's network namespace"

crictl_b info | grep -q '"user_namespaces_host_network": true' || fail "Status does not claim host-network user namespaces: $(grep -i 'host-network' "$WORK/berthd.log")"
sed -e 's/"userns-pod"/"userns-hostnet"/; s/"userns-uid"/"userns-hostnet-uid"/' \
    -e 's/300000/400000/g; s/"pid": 1,/"network": 2, "pid": 1,/' "$WORK/pod.json" >"$WORK/hpod.json"
sed -e 's/300000/400000/g; s/"pid": 1,/"network": 2, "pid": 1,/' \
    -e 's/"command": \[.*\]/"command": ["sleep", "600"]/' "$WORK/ctr.json" >"$WORK/hctr.json"
HPOD=$(crictl_b runp "$WORK/hpod.json") || fail "crictl runp (host network, user namespace)"
HCTR=$(crictl_b create "$HPOD" "$WORK/hctr.json" "$WORK/hpod.json") || fail "crictl create (host network)"
crictl_b start "$HCTR" >/dev/null || fail "crictl start (host network)"
out=$(crictl_b exec "$HCTR" sh -c 'readlink /proc/self/ns/net; head -1 /proc/self/uid_map; touch /sys/kernel/x 2>/dev/null && echo sys-writable; true') || fail "exec (host network)"
[[ $(echo $out) == "$(readlink /proc/self/ns/net) 0 400000 65536" ]] || fail "host network pod: $out"
pass "a host-network pod with its own user namespace: the host's network, its mapping, read-only /sys"
crictl_b rmp -f "$HPOD" >/dev/null || fail "rmp (host network)"

crictl_b rmp -f "$POD" >/dev/null || fail "rmp"
left=$(awk -v w="$WORK/state/pods/$POD" 'index($5, w) == 1' /proc/self/mountinfo)
[[ -z $left ]] || fail "mounts left: $left"
pass "the pod is removed with its pins (ns/user too)"
