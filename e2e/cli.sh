#!/usr/bin/env bash
# The `berth` operator CLI against a live berthd: ps, pods, logs (tail, partial lines, -f until
# exit), events, stats (live and one-shot), exec and attach, import and export (an exported image
# imported by a second berthd on a fresh data dir runs a container), doctor and completion, in
# human output and in `-o json` (checked with jq).
# Ends with "N passed, N failed" and exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
BERTH="${BERTH:-$(dirname "$BERTHD")/berth}"
[[ -x "$BERTH" ]] || fail "berth not built at $BERTH (run cargo build)"
start_berthd "registries:
  \"$REG\":
    insecure: true"
IMG=$REG/library/busybox:latest
crictl_b pull "$IMG" >/dev/null || fail "pull $IMG"

passed=0 failed=0
check() { # check DESCRIPTION COMMAND...: counts the command's success or failure
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $what"
  else failed=$((failed + 1)); echo "FAIL: $what" >&2; fi
}
b() { "$BERTH" --socket "$SOCK" "$@"; }

cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "cli-pod", "namespace": "cli-ns", "uid": "cli-uid", "attempt": 0},
 "log_directory": "$WORK/logs"}
JSON
# "printer" carries kubelet's pod labels (which ps prefers); "idle" has none (ps uses the pod).
cat > "$WORK/printer.json" <<JSON
{"metadata": {"name": "printer"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line \$i; done; echo oops >&2; head -c 40000 /dev/zero | tr '\\\\0' x; echo; sleep 1000"],
 "log_path": "printer.log",
 "labels": {"io.kubernetes.pod.name": "web-7f9", "io.kubernetes.pod.namespace": "prod"}}
JSON
cat > "$WORK/idle.json" <<JSON
{"metadata": {"name": "idle"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "i=0; while [ \$i -lt 8 ]; do echo tick \$i; i=\$((i+1)); sleep 0.3; done"],
 "log_path": "idle.log"}
JSON

# The CLI itself, not a shell function around it, so $! is the process that `kill` must end.
"$BERTH" --socket "$SOCK" events -o json > "$WORK/events.json" 2>&1 &
EVENTS_PID=$!
"$BERTH" --socket "$SOCK" events > "$WORK/events.txt" 2>&1 &
EVENTS_HUMAN_PID=$!
sleep 0.5

POD=$(crictl_b runp "$WORK/pod.json") || fail "crictl runp"
PRINTER=$(crictl_b create "$POD" "$WORK/printer.json" "$WORK/pod.json") || fail "create printer"
crictl_b start "$PRINTER" >/dev/null || fail "start printer"
for _ in $(seq 50); do grep -q xxxx "$WORK/logs/printer.log" 2>/dev/null && break; sleep 0.1; done

check "version names berth" grep -q '^berth ' <(b version)

# pods
out=$(b pods)
check "pods lists the pod by name and namespace" grep -q "cli-pod .*cli-ns" <<<"$out"
json=$(b pods -o json)
check "pods -o json" test "$(jq -r '.[0] | [.id, .name, .namespace, .state, .containers] | join(",")' <<<"$json")" == "$POD,cli-pod,cli-ns,ready,1"

# ps
out=$(b ps)
check "ps shows the container with kubelet's pod name" grep -q "printer .*web-7f9 *prod" <<<"$out"
json=$(b ps -o json)
check "ps -o json: labels give the pod" test "$(jq -r '.[0] | [.id, .name, .state, .pod_id, .pod_name, .pod_namespace] | join(",")' <<<"$json")" == "$PRINTER,printer,running,$POD,web-7f9,prod"
check "ps --pod takes a pod id prefix" test "$(b ps --pod "${POD:0:8}" -o json | jq -r '.[].id')" == "$PRINTER"
out=$(b ps --pod nosuchpod 2>&1) && st=0 || st=$?
check "ps --pod with an unknown prefix fails clearly" test "$st" -ne 0 -a -n "$(grep 'no pod with an id starting with "nosuchpod"' <<<"$out")"

# logs
out=$(b logs "${PRINTER:0:8}" 2>/dev/null)
check "logs prints the messages" test "$(head -5 <<<"$out" | tr '\n' ,)" == "line 1,line 2,line 3,line 4,line 5,"
check "logs joins partial lines (a 40000-byte line)" test "$(tail -1 <<<"$out" | tr -d '\n' | wc -c)" == 40000
check "logs sends stderr lines to stderr" test "$(b logs "$PRINTER" 2>&1 >/dev/null)" == oops
check "logs --tail 3: the last three messages (one on stderr)" test "$(b logs --tail 3 "$PRINTER" 2>/dev/null | cut -c1-6 | tr '\n' ,)" == "line 5,xxxxxx,"
json=$(b logs -o json "$PRINTER")
check "logs -o json has time, stream and message" test "$(jq -s -r '[(length | tostring), (.[] | select(.stream == "stderr") | .message), .[0].time[0:2]] | join(",")' <<<"$json")" == "7,oops,20"
out=$(b logs nosuch 2>&1) && st=0 || st=$?
check "logs of an unknown container fails clearly" test "$st" -ne 0 -a -n "$(grep 'no container with an id starting with "nosuch"' <<<"$out")"

IDLE=$(crictl_b create "$POD" "$WORK/idle.json" "$WORK/pod.json") || fail "create idle"
crictl_b start "$IDLE" >/dev/null || fail "start idle"
json=$(b ps -o json | jq -c ".[] | select(.id == \"$IDLE\")")
check "ps without pod labels uses the pod's metadata" test "$(jq -r '[.pod_name, .pod_namespace] | join(",")' <<<"$json")" == "cli-pod,cli-ns"

# stats, while both run
json=$(b stats -o json)
pod_stats=$(jq -c ".[] | select(.id == \"$POD\")" <<<"$json")
check "stats -o json: the pod's PIDs, memory and network" test "$(jq -r '[.pids > 1, .memory_working_set_bytes > 0, .network_rx_bytes != null, .network_tx_bytes != null] | all' <<<"$pod_stats")" == true
check "stats -o json: CPU and memory of the running container under its pod" test "$(jq -r ".containers[] | select(.id == \"$PRINTER\") | (.cpu_percent != null and .memory_working_set_bytes > 0)" <<<"$pod_stats")" == true
out=$(b stats --no-stream)
check "stats --no-stream: one table with CPU, memory, PIDs and network per pod" test "$(grep -c '^POD .*CPU % .*MEM .*PIDS .*NET I/O' <<<"$out"),$(grep -c "^${POD:0:13} .*cli-ns/cli-pod .*B / .*B" <<<"$out"),$(grep -c $'\e' <<<"$out")" == "1,1,0"
out=$(timeout 4 "$BERTH" --socket "$SOCK" stats | tr -d '\r') || true
check "stats refreshes the table in place" test "$(grep -o $'\e\\[H' <<<"$out" | wc -l)" -ge 2

# exec: stdout, stderr and the exit code; stdin with -i; a terminal with -t
out=$(b exec "${PRINTER:0:8}" sh -c 'echo out; echo err >&2; exit 3' 2>"$WORK/exec.err") && st=0 || st=$?
check "exec: stdout, stderr and exit code 3" test "$out,$(cat "$WORK/exec.err"),$st" == "out,err,3"
check "exec -i: stdin reaches the command" test "$(printf 'one\ntwo\n' | b exec -i "$PRINTER" wc -l)" == 2
out=$(b exec -t "$PRINTER" sh -c 'tty; stty size' | tr -d '\r')
check "exec -t: the command has a terminal" grep -q '^/dev/pts/' <<<"$out"
# -it on a real terminal (script(1) gives berth one): raw mode, the exit code, the terminal restored.
# script's input stays open (sleep) so the remote terminal is not hung up before `tty` runs.
out=$(sleep 5 | script -qec "stty -echo; $BERTH --socket $SOCK exec -it $PRINTER sh -c 'tty; exit 5'; echo berth-exit=\$?; stty -a | grep -o -- '-icanon' || echo cooked" /dev/null | tr -d '\r')
check "exec -it on a terminal: a remote terminal, exit code 5, this one back in cooked mode" test "$(grep -c '^/dev/pts/' <<<"$out"),$(grep -o 'berth-exit=[0-9]*' <<<"$out"),$(tail -1 <<<"$out")" == "1,berth-exit=5,cooked"
out=$(b exec nosuch true 2>&1) && st=0 || st=$?
check "exec in an unknown container fails clearly" test "$st" -ne 0 -a -n "$(grep 'no container with an id starting with "nosuch"' <<<"$out")"

# attach: stdin to a container waiting for a line, its answer back
cat > "$WORK/reader.json" <<JSON
{"metadata": {"name": "reader"}, "image": {"image": "$IMG"}, "stdin": true, "stdin_once": true,
 "command": ["sh", "-c", "read line; echo got \$line"], "log_path": "reader.log"}
JSON
READER=$(crictl_b create "$POD" "$WORK/reader.json" "$WORK/pod.json") || fail "create reader"
crictl_b start "$READER" >/dev/null || fail "start reader"
out=$( (sleep 1; echo hello) | timeout 20 "$BERTH" --socket "$SOCK" attach -i "$READER") || true
check "attach -i: stdin in, output back" grep -q "got hello" <<<"$out"

# logs -f follows until the container exits (timeout guards a hang)
out=$(timeout 30 "$BERTH" --socket "$SOCK" logs -f "$IDLE") && st=0 || st=$?
check "logs -f prints new lines and ends when the container exits" test "$st,$(tr '\n' , <<<"$out")" == "0,tick 0,tick 1,tick 2,tick 3,tick 4,tick 5,tick 6,tick 7,"
check "ps -a lists the exited container; ps does not" test "$(b ps -a -o json | jq -r ".[] | select(.id == \"$IDLE\") | .state"),$(b ps -o json | jq "[.[] | select(.id == \"$IDLE\")] | length")" == "exited,0"

# events
crictl_b rm "$IDLE" >/dev/null || fail "rm idle"
sleep 0.5
kill "$EVENTS_PID" "$EVENTS_HUMAN_PID"; wait "$EVENTS_PID" "$EVENTS_HUMAN_PID" 2>/dev/null || true
seen=$(jq -r "select(.id == \"$IDLE\") | .event" "$WORK/events.json" | tr '\n' ,)
check "events -o json: created, started, stopped, deleted" test "$seen" == "created,started,stopped,deleted,"
check "events -o json: the pod's own event" test "$(jq -r "select(.id == \"$POD\" and .kind == \"pod\") | .event" "$WORK/events.json" | head -1)" == created
check "events human lines name the container and pod" grep -q "container started .*name=idle pod=${POD:0:13} (cli-ns/cli-pod)" "$WORK/events.txt"

# doctor: against this berthd and its config
out=$(b doctor --config "$WORK/config.yaml") && st=0 || st=$?
json=$(b doctor --config "$WORK/config.yaml" -o json) || true
check "doctor: the socket and CRI checks pass" test "$(jq -r '[.checks[] | select(.name == "socket" or .name == "cri") | .status] | join(",")' <<<"$json")" == "OK,OK"
check "doctor -o json: every check has name, status, message, fix" test "$(jq '.checks | all(has("name") and has("status") and has("message") and has("fix"))' <<<"$json")" == true
check "doctor exit code matches its FAIL count" test "$([[ $st -eq 0 ]] && echo 0 || echo 1)" == "$([[ $(jq .failed <<<"$json") -eq 0 ]] && echo 0 || echo 1)"
check "doctor human output: one OK line per passing check" grep -q "^OK  *kernel" <<<"$out"
out=$("$BERTH" --socket "$WORK/nosuch.sock" doctor --config "$WORK/config.yaml") && st=0 || st=$?
check "doctor fails on a missing socket, with a fix" test "$st,$(grep -c '^FAIL  *socket' <<<"$out"),$(grep -c 'fix: start berthd' <<<"$out")" == "1,1,1"

# export and import: a second berthd on a fresh data dir, knowing no registry, runs the image
b export "$WORK/oci.tar" "$IMG"
check "export: an OCI image layout" test "$(tar tf "$WORK/oci.tar" | grep -c -e '^oci-layout$' -e '^index.json$' -e '^manifest.json$')" == 2
b export --format docker "$WORK/docker.tar" "$IMG"
check "export --format docker: docker save's manifest.json names the image" test "$(tar xOf "$WORK/docker.tar" manifest.json | jq -r '.[0].RepoTags[0]')" == "$IMG"
check "export - writes the tarball to stdout" test "$(b export - "$IMG" | tar t | grep -c '^index.json$')" == 1
out=$(b export "$WORK/none.tar" no.such/image:1 2>&1) && st=0 || st=$?
check "export of an unknown image fails and writes nothing" test "$st,$(grep -c 'not found' <<<"$out"),$(ls "$WORK"/none.* 2>/dev/null | wc -l)" == "1,1,0"
WORK2=$(mktemp -d /tmp/be2e2.XXXXXX); chmod 711 "$WORK2"; SOCK2=$WORK2/state/berth.sock
cat > "$WORK2/config.yaml" <<YAML
root_dir: $WORK2/root
state_dir: $WORK2/state
grpc:
  socket: $SOCK2
image:
  disk_reserve: 1%  # see e2e/lib.sh
YAML
"$BERTHD" --config "$WORK2/config.yaml" > "$WORK2/berthd.log" 2>&1 &
BERTHD2_PID=$!
stop_second() {
  for p in $(crictl --runtime-endpoint "unix://$SOCK2" pods -q 2>/dev/null); do
    crictl --runtime-endpoint "unix://$SOCK2" rmp -f "$p" >/dev/null 2>&1 || true
  done
  kill -TERM "$BERTHD2_PID" 2>/dev/null; wait "$BERTHD2_PID" 2>/dev/null || true
  awk -v w="$WORK2" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK2"
}
trap 'stop_second; stop_berthd' EXIT
for _ in $(seq 200); do [[ -S "$SOCK2" ]] && break; sleep 0.05; done
b2() { "$BERTH" --socket "$SOCK2" "$@"; }
out=$(b2 import "$WORK/docker.tar")
check "import (docker format) names the image" grep -q "^imported $IMG sha256:" <<<"$out"
json=$(b2 import -o json - < "$WORK/oci.tar")
check "import - (OCI layout from stdin) -o json" test "$(jq -r '.[0] | [.repo_tags[0], (.id | startswith("sha256:"))] | join(",")' <<<"$json")" == "$IMG,true"
printf 'not a tarball' > "$WORK/junk.tar"
out=$(b2 import "$WORK/junk.tar" 2>&1) && st=0 || st=$?
check "import of a malformed archive fails clearly" test "$st,$(grep -c 'archive: not a tar file' <<<"$out")" == "1,1"
cat > "$WORK2/pod.json" <<JSON
{"metadata": {"name": "imported", "namespace": "cli-ns", "uid": "imported-uid", "attempt": 0},
 "log_directory": "$WORK2/logs"}
JSON
cat > "$WORK2/echo.json" <<JSON
{"metadata": {"name": "echo"}, "image": {"image": "$IMG"},
 "command": ["sh", "-c", "echo from-an-imported-image"], "log_path": "echo.log"}
JSON
c2() { crictl --runtime-endpoint "unix://$SOCK2" --image-endpoint "unix://$SOCK2" "$@"; }
out=$(c2 run "$WORK2/echo.json" "$WORK2/pod.json" 2>&1) || true
for _ in $(seq 100); do grep -q from-an-imported-image "$WORK2/logs/echo.log" 2>/dev/null && break; sleep 0.1; done
check "a container runs from the imported image on a fresh data dir" grep -q "stdout F from-an-imported-image" "$WORK2/logs/echo.log"

# completion
check "completion bash" grep -q "complete -F _berth" <(b completion bash)
check "completion zsh" grep -q "#compdef berth" <(b completion zsh)
check "completion fish" grep -q "complete -c berth" <(b completion fish)

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
