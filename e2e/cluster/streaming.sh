# e2e/cluster/test.sh, part 2: the streaming APIs, kubectl -> API server -> kubelet -> berth's
# streaming server: logs -f, exec (WebSocket), exec -it, attach, port-forward, cp.

logs_follow() {
  busybox_pod ticker "$N2" 'i=0; while true; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done'
  wait_ready 120 ticker || bad "ticker not ready: $(kn get pod ticker -o wide)" || return
  kn logs -f ticker > "$TMP/ticker.log" 2>&1 &
  local pid=$! first last
  BG_PIDS+=("$pid")
  sleep 3
  first=$(grep -c '^tick ' "$TMP/ticker.log" || true)
  sleep 3
  last=$(grep -c '^tick ' "$TMP/ticker.log" || true)
  kill -0 "$pid" 2>/dev/null || bad "kubectl logs -f ended: $(cat "$TMP/ticker.log")" || return
  kill "$pid"
  ((first >= 2 && last >= first + 4)) || bad "followed log had $first then $last lines: $(tail -3 "$TMP/ticker.log")" || return
  # The lines are the container's, in order, from the first.
  [[ $(head -1 "$TMP/ticker.log") == "tick 1" ]] || bad "first line '$(head -1 "$TMP/ticker.log")'" || return
}
check "kubectl logs -f follows a container on node 2 as it writes" logs_follow

exec_ws() {
  local out err code=0
  out=$(kn exec client -v=7 -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 7' 2> "$TMP/exec.err") || code=$?
  [[ $code == 7 ]] || bad "exit code $code, want 7" || return
  [[ $out == to-stdout ]] || bad "stdout '$out'" || return
  grep -qx to-stderr "$TMP/exec.err" || bad "stderr lacks to-stderr: $(grep -v '^I' "$TMP/exec.err" | head -5)" || return
  # kubectl asked for the WebSocket v5 protocol and did not fall back to SPDY.
  grep -q 'v5.channel.k8s.io' "$TMP/exec.err" || bad "kubectl did not offer v5.channel.k8s.io" || return
  ! grep -qi 'fallback' "$TMP/exec.err" || bad "kubectl fell back: $(grep -i fallback "$TMP/exec.err")" || return
  out=$(head -c 100000 /dev/urandom | base64 -w0 | kn exec -i client -- sh -c 'wc -c') || bad "exec -i failed" || return
  [[ $out == 133336 ]] || bad "exec -i: the container read $out bytes of stdin, want 133336" || return
}
check "kubectl exec over WebSocket v5: stdout, stderr, exit code 7, 100 KB of stdin" exec_ws

exec_tty() {
  local out
  # script(1) gives kubectl a terminal; kubectl gives the container one through berth.
  out=$(printf 'tty; echo "six times seven is $((6 * 7))"; exit 3\n' |
    timeout 30 script -qec "$BIN/kubectl --kubeconfig $CL_DIR/admin.kubeconfig -n $NS exec -it client -- sh" /dev/null) ||
    true
  grep -q '^/dev/pts/[0-9]' <<<"${out//$'\r'/}" || bad "no tty in the container: $out" || return
  grep -q 'six times seven is 42' <<<"$out" || bad "the shell did not run the input: $out" || return
}
check "kubectl exec -it: the container gets a terminal and reads the input typed into it" exec_tty

attach() {
  busybox_pod echoer "$N2" 'echo ready; while read -r line; do echo "got $line"; done; echo eof' \
    "    stdin: true"
  wait_ready 120 echoer || bad "echoer not ready" || return
  local out
  out=$( (echo ping; sleep 3) | timeout 8 "$BIN/kubectl" --kubeconfig "$CL_DIR/admin.kubeconfig" -n "$NS" attach -i echoer 2>&1) || true
  grep -qx 'got ping' <<<"$out" || bad "attach output: $out" || return
  wait_for 10 eval 'kn logs echoer | grep -qx "got ping"' || bad "echoer's log lacks the attached input: $(kn logs echoer)" || return
}
check "kubectl attach -i: input reaches the running process on node 2, its output comes back" attach

port_forward() {
  local name ip port out
  read -r name ip < <(web_pod_on "$N2")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kn port-forward "pod/$name" "$port:8080" > "$TMP/pf.log" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  wait_for 20 grep -q 'Forwarding from' "$TMP/pf.log" || { kill "$pid"; bad "port-forward: $(cat "$TMP/pf.log")"; return 1; }
  out=$(curl -sf --max-time 10 "http://127.0.0.1:$port/") || { kill "$pid"; bad "curl through the forward failed"; return 1; }
  local big
  big=$(curl -sf --max-time 10 "http://127.0.0.1:$port/index.html" -o /dev/null -w '%{http_code}') || true
  kill "$pid"
  [[ $out == "$name" ]] || bad "the forward answered '$out', want $name" || return
  [[ $big == 200 ]] || bad "a second connection through the forward: HTTP $big" || return
}
check "kubectl port-forward to a pod on node 2 serves two connections" port_forward

copy() {
  head -c 300000 /dev/urandom > "$TMP/blob"
  kn cp "$TMP/blob" client:/tmp/blob >/dev/null 2>&1 || bad "kubectl cp to the pod failed" || return
  local sum
  sum=$(kn exec client -- md5sum /tmp/blob | cut -d' ' -f1)
  [[ $sum == "$(md5sum < "$TMP/blob" | cut -d' ' -f1)" ]] || bad "checksum in the pod $sum differs" || return
  kn exec client -- sh -c 'mkdir -p /tmp/d && echo inner > /tmp/d/file' || bad "exec mkdir failed" || return
  kn cp client:/tmp/d "$TMP/back" >/dev/null 2>&1 || bad "kubectl cp from the pod failed" || return
  [[ $(cat "$TMP/back/file") == inner ]] || bad "copied back: $(ls -la "$TMP/back" 2>&1)" || return
}
check "kubectl cp: 300 KB into a pod intact, a directory out of it" copy
