#!/usr/bin/env bash
# Exec, attach and port-forward through berth's streaming server with real crictl, over SPDY
# and over WebSocket: output, exit codes, piped stdin, a terminal, attach, and an HTTP server
# reached inside the pod's network namespace.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"

cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "stream-pod", "namespace": "default", "uid": "stream-uid", "attempt": 0},
 "hostname": "stream-host", "log_directory": "$WORK/logs"}
JSON
cat > "$WORK/ctr.json" <<JSON
{"metadata": {"name": "app"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -f -p 8080 -h /www"],
 "log_path": "app.log"}
JSON
cat > "$WORK/cat.json" <<JSON
{"metadata": {"name": "cat"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "while read line; do echo \"got:\$line\"; done"],
 "stdin": true, "log_path": "cat.log"}
JSON
POD=$(crictl_b runp "$WORK/pod.json") || fail "crictl runp"
CTR=$(crictl_b create "$POD" "$WORK/ctr.json" "$WORK/pod.json") || fail "crictl create"
crictl_b start "$CTR" >/dev/null || fail "crictl start"
CAT=$(crictl_b create "$POD" "$WORK/cat.json" "$WORK/pod.json") || fail "crictl create cat"
crictl_b start "$CAT" >/dev/null || fail "crictl start cat"

for t in spdy websocket; do
  out=$(crictl_b exec -r "$t" "$CTR" sh -c 'echo out; echo err >&2' 2>"$WORK/err") || fail "$t: exec"
  [[ $out == out ]] || fail "$t: exec stdout: $out"
  grep -qx err "$WORK/err" || fail "$t: exec stderr: $(cat "$WORK/err")"
  pass "$t: crictl exec streams stdout and stderr apart"

  set +e; crictl_b exec -r "$t" "$CTR" sh -c 'exit 3' 2>"$WORK/err"; code=$?; set -e
  # crictl itself exits 1 on any streamed exec failure; client-go decoded the exit code from
  # the v4 status (NonZeroExitCode, cause ExitCode) into "command terminated with exit code 3".
  [[ $code == 1 ]] && grep -q 'command terminated with exit code 3"' "$WORK/err" ||
    fail "$t: exit status $code: $(grep -v level=warning "$WORK/err")"
  pass "$t: crictl exec reports the command's exit code"

  out=$(printf 'a\nb\n' | crictl_b exec -r "$t" -i "$CTR" sh -c 'while read l; do echo "<$l>"; done; echo eof') || fail "$t: exec -i"
  [[ $out == $'<a>\n<b>\neof' ]] || fail "$t: exec -i output: $out"
  pass "$t: crictl exec -i forwards stdin and its end"

  big=$(crictl_b exec -r "$t" "$CTR" sh -c 'head -c 3000000 /dev/zero | tr "\0" x' | wc -c)
  [[ $big == 3000000 ]] || fail "$t: 3 MB of output arrived as $big bytes"
  pass "$t: crictl exec carries 3 MB of output intact"

  out=$(script -qec "stty cols 123 rows 45 2>/dev/null; crictl --runtime-endpoint unix://$SOCK exec -r $t -it $CTR sh -c '[ -t 0 ] && [ -t 1 ] && echo on-a-terminal; tty; stty size'" /dev/null </dev/null | tr -d '\r\000' | sed 's/\^@//g')
  grep -qx on-a-terminal <<<"$out" || fail "$t: exec -it has no terminal: $out"
  grep -qx '45 123' <<<"$out" || fail "$t: exec -it terminal size: $out"
  grep -q '^/dev/pts/' <<<"$out" || fail "$t: exec -it terminal has no name in the container: $out"
  pass "$t: crictl exec -it runs on a terminal of the client's size"

  out=$( (sleep 1; echo "ping-$t"; sleep 1) | timeout -s KILL 5 crictl --runtime-endpoint "unix://$SOCK" attach -r "$t" -i "$CAT" 2>/dev/null | head -1) || true
  [[ $out == "got:ping-$t" ]] || fail "$t: attach: '$out'"
  pass "$t: crictl attach writes stdin and reads the container's output"

  LPORT=$((18080 + RANDOM % 1000))
  crictl --runtime-endpoint "unix://$SOCK" port-forward -r "$t" "$POD" "$LPORT:8080" >"$WORK/pf.log" 2>&1 &
  PF=$!
  for _ in $(seq 50); do grep -q Forwarding "$WORK/pf.log" && break; sleep 0.1; done
  for i in 1 2 3; do
    body=$(curl -s --max-time 5 http://127.0.0.1:$LPORT/index.html) || true
    [[ $body == hello-from-pod ]] || { kill $PF 2>/dev/null || true; fail "$t: port-forward request $i: '$body' $(cat "$WORK/pf.log")"; }
  done
  pids=(); for i in 1 2 3 4 5 6; do curl -s --max-time 5 -o "$WORK/par$i" http://127.0.0.1:$LPORT/index.html & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  for i in 1 2 3 4 5 6; do [[ $(cat "$WORK/par$i") == hello-from-pod ]] || { kill $PF 2>/dev/null || true; fail "$t: parallel request $i"; }; done
  kill -0 $PF 2>/dev/null || fail "$t: crictl port-forward exited: $(cat "$WORK/pf.log")"
  kill $PF; wait $PF 2>/dev/null || true
  pass "$t: crictl port-forward reaches a server on the pod's localhost, many connections at once"
done
