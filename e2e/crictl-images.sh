#!/usr/bin/env bash
# crictl's image commands against berth and the local test registry, as an operator runs them:
# pull, images, inspecti, rmi, imagefsinfo.
source "$(dirname "$0")/lib.sh"
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
start_berthd "registries:
  \"$REG\":
    insecure: true"

img=$REG/library/debian:bookworm
out=$(crictl_b pull "$img") || fail "crictl pull $img"
grep -q "^Image is up to date for sha256:" <<<"$out" || fail "crictl pull said: $out"
id=${out##*for }
pass "crictl pull $img"

crictl_b images | grep -q "^$REG/library/debian *bookworm" || fail "crictl images: $(crictl_b images)"
crictl_b images -q | grep -qx "$id" || fail "crictl images -q lacks $id"
pass "crictl images lists it"

info=$(crictl_b inspecti "$img")
[[ $(jq -r .status.id <<<"$info") == "$id" ]] || fail "inspecti id: $info"
[[ $(jq -r '.info.imageSpec.config.Cmd[0]' <<<"$info") == bash ]] || fail "inspecti config: $info"
[[ $(jq -r '.status.repoDigests | length' <<<"$info") == 1 ]] || fail "inspecti digests: $info"
pass "crictl inspecti shows the config"

used=$(crictl_b imagefsinfo | jq -r '.status.imageFilesystems[0].usedBytes.value')
(( used > 50000000 )) || fail "imagefsinfo used bytes $used"
pass "crictl imagefsinfo reports $used bytes"

crictl_b rmi "$img" >/dev/null || fail "crictl rmi"
[[ -z $(crictl_b images -q) ]] || fail "image still listed after rmi"
[[ -z $(ls "$WORK/root/snapshots") ]] || fail "snapshots left after rmi: $(ls "$WORK/root/snapshots")"
pass "crictl rmi removes it and frees its snapshots"

if crictl_b pull "Not/A:Valid:Ref" 2>"$WORK/err"; then fail "bad reference accepted"; fi
grep -q "InvalidArgument" "$WORK/err" || fail "bad reference error: $(cat "$WORK/err")"
pass "a malformed reference is InvalidArgument"

# berth's own CLI on the same socket
BERTH="$E2E_ROOT/target/debug/berth"
layered=$REG/test/layered:gzip
out=$("$BERTH" --socket "$SOCK" pull "$layered" 2>&1) || fail "berth pull: $out"
grep -q "^$layered: pulled sha256:" <<<"$out" || fail "berth pull said: $out"
"$BERTH" --socket "$SOCK" images | grep -q "^$REG/test/layered *gzip" || fail "berth images"
[[ $("$BERTH" --socket "$SOCK" history "$layered" | wc -l) -gt 5 ]] || fail "berth history"
"$BERTH" --socket "$SOCK" inspect "$layered" | jq -e '.imageSpec.config.User == "1000:1000"' >/dev/null \
  || fail "berth inspect"
"$BERTH" --socket "$SOCK" rmi "$layered" | grep -q "^Deleted: sha256:" || fail "berth rmi"
[[ -z $(crictl_b images -q) ]] || fail "image still there after berth rmi"
pass "berth pull/images/history/inspect/rmi"
