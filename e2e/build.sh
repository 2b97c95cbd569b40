#!/usr/bin/env bash
# `berth build` and `berth push` end to end against a live berthd: builds a two-stage image from
# a Dockerfile, runs it with crictl, rebuilds after a source change (every step before the
# changed COPY must be CACHED, the ones from it on must run), pushes it to the local registry
# and pushes again (no blob uploaded the second time), then pulls it back on a fresh berthd.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
BERTH="${BERTH:-$(dirname "$BERTHD")/berth}"
[[ -x "$BERTH" ]] || fail "berth not built at $BERTH (run cargo build)"
start_berthd "registries:
  \"$REG\":
    insecure: true"
b() { "$BERTH" --socket "$SOCK" "$@"; }

CTX=$WORK/ctx
mkdir -p "$CTX"
cat > "$CTX/Dockerfile" <<DOCKERFILE
FROM $REG/library/busybox:latest AS build
WORKDIR /work
RUN echo "toolchain ready" > toolchain
COPY main.txt ./
RUN cat toolchain main.txt > app.out

FROM $REG/library/busybox:latest
COPY --from=build /work/app.out /app.out
CMD ["cat", "/app.out"]
DOCKERFILE
echo "version one" > "$CTX/main.txt"
NAME=$REG/e2e-build/app-$RANDOM$RANDOM:v1

# result_of OUTPUT STEP-PREFIX: the CACHED/DONE line that follows the step's header.
result_of() {
  awk -v step="$2" '
    /^#[0-9]+ \[/ { sub(/^#[0-9]+ \[[0-9]+\/[0-9]+\] /, ""); current = $0; next }
    /^CACHED$|^DONE / { if (index(current, step) == 1 && !found) { print $1; found = 1 } }
  ' <<<"$1"
}

out=$(b build -t "$NAME" "$CTX") || fail "first build: $out"
echo "$out"
grep -q '^built sha256:' <<<"$out" || fail "no image id in: $out"
[[ $(result_of "$out" "RUN echo") == DONE ]] || fail "first build ran the RUN"
pass "two-stage build"
hist=$(b history "$NAME")
grep -qE '^[^ ]+ +- +CMD \["cat", "/app.out"\]' <<<"$hist" || fail "history: CMD not an empty layer: $hist"
grep -qE '^[^ ]+ +yes +COPY --from=build' <<<"$hist" || fail "history: COPY --from not a layer: $hist"
pass "berth history: one line per instruction, empty layers marked"

# Run it with crictl.
cat > "$WORK/pod.json" <<JSON
{"metadata": {"name": "built", "namespace": "e2e", "uid": "built-uid", "attempt": 0},
 "log_directory": "$WORK/logs"}
JSON
cat > "$WORK/ctr.json" <<JSON
{"metadata": {"name": "app"}, "image": {"image": "$NAME"}, "log_path": "app.log"}
JSON
POD=$(crictl_b runp "$WORK/pod.json") || fail "runp"
CTR=$(crictl_b create "$POD" "$WORK/ctr.json" "$WORK/pod.json") || fail "create"
crictl_b start "$CTR" >/dev/null || fail "start"
for _ in $(seq 100); do
  [[ $(crictl_b inspect -o go-template --template '{{.status.state}}' "$CTR") == CONTAINER_EXITED ]] && break
  sleep 0.1
done
grep -q "toolchain ready" "$WORK/logs/app.log" && grep -q "version one" "$WORK/logs/app.log" ||
  fail "container output: $(cat "$WORK/logs/app.log")"
crictl_b rmp -f "$POD" >/dev/null
pass "crictl runs the built image"

# A source change: everything before the changed COPY is cached, the rest runs.
echo "version two" > "$CTX/main.txt"
out=$(b build -t "$NAME" "$CTX") || fail "rebuild: $out"
echo "$out"
[[ $(result_of "$out" "WORKDIR /work") == CACHED ]] || fail "WORKDIR not cached"
[[ $(result_of "$out" "RUN echo") == CACHED ]] || fail "RUN before the change not cached"
[[ $(result_of "$out" "COPY main.txt") == DONE ]] || fail "changed COPY was cached"
[[ $(result_of "$out" "RUN cat") == DONE ]] || fail "RUN after the change was cached"
pass "rebuild after a source change: cache hits up to the changed COPY"

# Push twice: the second push uploads nothing.
out=$(b push "$NAME" 2>&1) || fail "push: $out"
echo "$out"
grep -q "$NAME: pushed sha256:" <<<"$out" || fail "push result missing"
grep -q "(0 blob(s) uploaded)" <<<"$out" && fail "first push uploaded nothing"
out=$(b push "$NAME" 2>&1) || fail "second push: $out"
echo "$out"
grep -q "(0 blob(s) uploaded)" <<<"$out" || fail "second push uploaded blobs: $out"
pass "push, then a second push that sends no layer"

# Pulled back on a fresh berthd, it is the same image.
ID=$(b images | awk -v n="${NAME%:*}" '$1 == n {print $3}' | head -1)
stop_berthd
start_berthd "registries:
  \"$REG\":
    insecure: true"
crictl_b pull "$NAME" >/dev/null || fail "pull back $NAME"
[[ $(b images | awk -v n="${NAME%:*}" '$1 == n {print $3}' | head -1) == "$ID" ]] || fail "pulled image id differs"
pass "pulled back on a fresh data dir: same image id"
echo "e2e/build.sh: all passed"
