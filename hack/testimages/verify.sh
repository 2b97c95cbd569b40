#!/usr/bin/env bash
# Checks the test fixtures from the outside with curl, sha256sum and jq, after build.sh:
#  - every image in $BERTH_TEST_DIR/images.tsv resolves on the plain registry and, with the same
#    digest, on the TLS + basic-auth registry; every manifest, config and layer hashes to its digest,
#    has its descriptor's size, and every layer decompresses to its config diff_id (the two deliberately
#    broken images are checked to be broken in exactly the documented way);
#  - each fault proxy mode does what docs/test-fixtures.md says.
# Exits non-zero if anything is off. The curl lines double as examples of the APIs.
set -euo pipefail

HACK=$(cd "$(dirname "$0")/.." && pwd)
eval "$("$HACK/registry.sh" env)"
TSV=$BERTH_TEST_DIR/images.tsv
[[ -s $TSV ]] || { echo "verify.sh: no $TSV; run hack/testimages/build.sh first" >&2; exit 1; }
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
PLAIN=http://$BERTH_TEST_REGISTRY
TLS=https://$BERTH_TEST_REGISTRY_TLS
PROXY=http://$BERTH_TEST_FAULTPROXY
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; curl -s -X POST "$PROXY/__fault/reset" >/dev/null || true' EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok    $*"; }
bad() { failed=$((failed + 1)); echo "FAIL  $*"; }
expect() { # expect DESCRIPTION GOT WANT
  if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1 | sed 's/^/sha256:/'; }
tls_curl() { curl -s --cacert "$BERTH_TEST_CA" -u "$BERTH_TEST_REGISTRY_USER:$BERTH_TEST_REGISTRY_PASSWORD" "$@"; }
fault() { curl -sf -X POST "$PROXY/__fault/set" -d "$1" >/dev/null; }

# ---------------------------------------------------------------------------------------------------
# Registry contents

# check_image REPO REF WANT_DIGEST: the manifest (recursively for an index) and all its blobs.
check_image() {
  local repo=$1 ref=$2 want=$3 m=$TMP/manifest.$RANDOM type tls_digest
  curl -sf -H "Accept: $ACCEPT" -D "$m.h" -o "$m" "$PLAIN/v2/$repo/manifests/$ref" ||
    { bad "$repo@$ref: manifest GET failed"; return; }
  expect "$repo@$ref: manifest digest (plain)" "$(sha "$m")" "$want"
  type=$(jq -r .mediaType "$m")
  expect "$repo@$ref: Content-Type is the manifest's mediaType" \
    "$(awk -F': ' 'tolower($1) == "content-type" {print $2}' "$m.h" | tr -d '\r')" "$type"
  tls_digest=$(tls_curl -f -H "Accept: $ACCEPT" "$TLS/v2/$repo/manifests/$ref" | sha256sum | cut -d' ' -f1)
  expect "$repo@$ref: manifest digest (TLS + auth)" "sha256:$tls_digest" "$want"
  case $type in
    *index*|*manifest.list*)
      local child
      for child in $(jq -r '.manifests[].digest' "$m"); do check_image "$repo" "$child" "$child"; done
      ;;
    *)
      check_blob "$repo" "$(jq -r .config.digest "$m")" "$(jq -r .config.size "$m")" "$ref config" "$m.config"
      local i n diff_id media digest size blob
      n=$(jq '.layers | length' "$m")
      for ((i = 0; i < n; i++)); do
        media=$(jq -r ".layers[$i].mediaType" "$m")
        digest=$(jq -r ".layers[$i].digest" "$m")
        size=$(jq -r ".layers[$i].size" "$m")
        blob=$TMP/layer
        check_blob "$repo" "$digest" "$size" "$ref layer $i" "$blob"
        case $media in
          *zstd) diff_id=$(zstd -dc "$blob" | sha256sum | cut -d' ' -f1) ;;
          *gzip) diff_id=$(gzip -dc "$blob" | sha256sum | cut -d' ' -f1) ;;
          *) diff_id=$(sha256sum "$blob" | cut -d' ' -f1) ;;
        esac
        local want_diff_id
        want_diff_id=$(jq -r ".rootfs.diff_ids[$i]" "$m.config")
        if [[ $repo:$ref == test/hostile:bad-diffid ]]; then
          [[ sha256:$diff_id != "$want_diff_id" ]] && ok "$repo:$ref layer $i: diff_id is wrong, as built" ||
            bad "$repo:$ref layer $i: diff_id should be wrong"
        else
          expect "$repo@$ref layer $i: uncompressed sha256 is the config's diff_id" "sha256:$diff_id" "$want_diff_id"
        fi
      done
      ;;
  esac
}

# check_blob REPO DIGEST SIZE WHAT OUT: GET the blob into OUT, check its digest and size.
check_blob() {
  local repo=$1 digest=$2 size=$3 what=$4 out=$5 got_size
  curl -sf -o "$out" "$PLAIN/v2/$repo/blobs/$digest" || { bad "$repo $what: GET blob failed"; return; }
  expect "$repo $what: blob sha256" "$(sha "$out")" "$digest"
  got_size=$(stat -c %s "$out")
  if [[ $repo == test/hostile && $what == "bad-size layer 0" ]]; then
    expect "$repo $what: descriptor size is the blob size + 1, as built" "$size" "$((got_size + 1))"
  else
    expect "$repo $what: blob size matches the descriptor" "$got_size" "$size"
  fi
}

echo "=== registries"
expect "plain /v2/ answers 200" "$(curl -s -o /dev/null -w '%{http_code}' "$PLAIN/v2/")" 200
expect "TLS /v2/ without credentials answers 401" \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$BERTH_TEST_CA" "$TLS/v2/")" 401
expect "TLS /v2/ with a wrong password answers 401" \
  "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$BERTH_TEST_CA" -u "$BERTH_TEST_REGISTRY_USER:wrong" "$TLS/v2/")" 401
expect "TLS /v2/ with the credentials answers 200" "$(tls_curl -o /dev/null -w '%{http_code}' "$TLS/v2/")" 200
expect "TLS answers for localhost too (certificate SAN)" "$(tls_curl -o /dev/null -w '%{http_code}' \
  "https://localhost:${BERTH_TEST_REGISTRY_TLS##*:}/v2/")" 200

echo "=== images"
while IFS=$'\t' read -r ref digest _; do
  ref=${ref#*/}
  check_image "${ref%:*}" "${ref##*:}" "$digest"
done <"$TSV"
expect "test/multiarch:arm-only has no amd64 entry" \
  "$(curl -sf -H "Accept: $ACCEPT" "$PLAIN/v2/test/multiarch/manifests/arm-only" | jq -c '[.manifests[].platform]')" \
  '[{"os":"linux","architecture":"arm64","variant":"v8"}]'

# ---------------------------------------------------------------------------------------------------
# Fault proxy

echo "=== fault proxy"
curl -sf -X POST "$PROXY/__fault/reset" >/dev/null
BUSYBOX_DIGEST=$(curl -sf -H "Accept: $ACCEPT" "$PLAIN/v2/library/busybox/manifests/latest" | jq -r '.layers[0].digest')
BLOB=$PROXY/v2/library/busybox/blobs/$BUSYBOX_DIGEST
MANIFEST=$PROXY/v2/library/busybox/manifests/latest

curl -sf -o "$TMP/b" "$BLOB"
expect "none: blob passes unchanged" "$(sha "$TMP/b")" "$BUSYBOX_DIGEST"
FULL=$(stat -c %s "$TMP/b")

fault '{"mode": "truncate", "count": 1}'
rc=0; curl -s -o "$TMP/part" "$BLOB" || rc=$?
expect "truncate: curl sees a short body (exit 18)" "$rc" 18
expect "truncate: half the body arrived" "$(stat -c %s "$TMP/part")" "$((FULL / 2))"
expect "truncate: the resume with Range answers 206" \
  "$(curl -s -r "$(stat -c %s "$TMP/part")-" -o "$TMP/rest" -w '%{http_code}' "$BLOB")" 206
cat "$TMP/part" "$TMP/rest" >"$TMP/joined"
expect "truncate: first half + resumed rest hash to the digest" "$(sha "$TMP/joined")" "$BUSYBOX_DIGEST"
expect "log: the resume's Range header was recorded" \
  "$(curl -sf "$PROXY/__fault/log" | jq -r '.[-1].range + " " + (.[-1].status|tostring)')" "bytes=$((FULL / 2))- 206"

fault '{"mode": "wrongdigest", "count": 1}'
curl -sf -o "$TMP/wd" "$BLOB"
expect "wrongdigest: same length" "$(stat -c %s "$TMP/wd")" "$FULL"
[[ $(sha "$TMP/wd") != "$BUSYBOX_DIGEST" ]] && ok "wrongdigest: digest differs" || bad "wrongdigest: digest should differ"
expect "wrongdigest: the gzip stream still inflates to the right tar" \
  "$(gzip -dc "$TMP/wd" | sha256sum | cut -d' ' -f1)" "$(gzip -dc "$TMP/b" | sha256sum | cut -d' ' -f1)"
expect "wrongdigest: count spent, the next GET is intact" "$(curl -sf "$BLOB" | sha256sum | cut -c1-64)" "${BUSYBOX_DIGEST#sha256:}"

fault '{"mode": "wrongdigest", "target": "manifest", "count": 1}'
want_manifest=$(curl -sf -H "Accept: $ACCEPT" "$PLAIN/v2/library/busybox/manifests/latest" | sha256sum)
[[ $(curl -sf -H "Accept: $ACCEPT" "$MANIFEST" | sha256sum) != "$want_manifest" ]] &&
  ok "wrongdigest target=manifest: manifest body changed" || bad "wrongdigest target=manifest: body unchanged"

fault '{"mode": "error500", "count": 2}'
codes=""
for _ in 1 2 3; do codes+="$(curl -s -o /dev/null -w '%{http_code}' "$BLOB") "; done
expect "error500 count=2: 500, 500, then 200" "$codes" "500 500 200 "
expect "error500: manifests pass through" \
  "$(fault '{"mode": "error500"}'; curl -s -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$MANIFEST")" 200

fault '{"mode": "stall", "count": 1, "stall_seconds": 5}'
rc=0; curl -s --max-time 2 -o "$TMP/stall" "$BLOB" || rc=$?
expect "stall: the client times out (curl exit 28)" "$rc" 28
expect "stall: 1024 bytes arrived before the silence" "$(stat -c %s "$TMP/stall")" 1024
expect "log: the stalled request is logged while it hangs" \
  "$(curl -sf "$PROXY/__fault/log" | jq -r '[.[] | select(.fault == "stall")][-1].status')" 200

fault '{"mode": "unauthorized"}'
expect "unauthorized: /v2/ answers 401" "$(curl -s -o /dev/null -w '%{http_code}' "$PROXY/v2/")" 401
expect "unauthorized: manifests too" "$(curl -s -o /dev/null -w '%{http_code}' "$MANIFEST")" 401

fault '{"mode": "bearer"}'
challenge=$(curl -s -D - -o /dev/null -H "Accept: $ACCEPT" "$MANIFEST" | awk -F': ' 'tolower($1) == "www-authenticate" {print $2}' | tr -d '\r')
expect "bearer: challenge names realm, service and scope" "$challenge" \
  "Bearer realm=\"$PROXY/token\",service=\"berth-test\",scope=\"repository:library/busybox:pull\""
TOKEN_URL="$PROXY/token?service=berth-test&scope=repository:library/busybox:pull"
expect "bearer: token with wrong credentials answers 401" \
  "$(curl -s -o /dev/null -w '%{http_code}' -u tokenuser:wrong "$TOKEN_URL")" 401
token=$(curl -sf -u "$BERTH_TEST_TOKEN_USER:$BERTH_TEST_TOKEN_PASSWORD" "$TOKEN_URL" | jq -r .token)
expect "bearer: the manifest with the token" \
  "$(curl -sf -H "Accept: $ACCEPT" -H "Authorization: Bearer $token" "$MANIFEST" | sha256sum)" "$want_manifest"
expect "bearer: the token does not open another repository" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H "Accept: $ACCEPT" \
    "$PROXY/v2/test/layered/manifests/gzip")" 401

fault '{"mode": "bearer+redirect", "reject_auth": true}'
location=$(curl -s -o /dev/null -w '%{redirect_url}' -H "Authorization: Bearer $token" "$BLOB")
expect "redirect: 307 to /__blob on the proxy" "$location" \
  "$PROXY/__blob/$BUSYBOX_DIGEST?name=library%2Fbusybox"
expect "redirect: the target serves the blob without Authorization" "$(curl -sf "$location" | sha256sum | cut -c1-64)" \
  "${BUSYBOX_DIGEST#sha256:}"
expect "redirect: reject_auth makes the target refuse an Authorization header" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$location")" 400
expect "redirect: Range on the target answers 206" "$(curl -s -o /dev/null -w '%{http_code}' -r 0-9 "$location")" 206

curl -sf -X POST "$PROXY/__fault/reset" >/dev/null
expect "reset: mode none, empty log" "$(curl -sf "$PROXY/__fault/state" | jq -r .mode) $(curl -sf "$PROXY/__fault/log" | jq length)" "none 0"

echo
echo "verify: $passed passed, $failed failed"
((failed == 0))
