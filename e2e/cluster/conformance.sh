#!/usr/bin/env bash
# Runs upstream Kubernetes's [Conformance] specs for the node-level areas berth serves (Pods,
# Containers, ConfigMap/Secret/projected/downward API volumes, EmptyDir, Probing, Lifecycle hooks,
# Security Context, Kubectl exec/logs/port-forward) against the cluster e2e/cluster/up.sh started.
#
#   e2e/cluster/up.sh && e2e/cluster/conformance.sh [E2E.TEST-FLAGS...]; e2e/cluster/down.sh
#   e2e/cluster/conformance.sh --images-only    (only puts the images in the registry)
#
# The e2e test binary, agnhost and the ginkgo CLI (runs CONFORMANCE_PROCS specs at a time, default
# 4) come from hack/k8s/build.sh (built once from the Go module proxy,
# cached). The images the specs run are served from the local registry under their upstream paths
# (KUBE_TEST_REPO_LIST maps registry.k8s.io/... there): agnhost built from source into an image by
# node 1's berthd (`berth build`), the others copies of hack/testimages's Debian-built images
# (busybox, nginx, nonewprivs, pause) under the tags this release asks for. Results: the JUnit
# report and the log in $CONFORMANCE_OUT (default /tmp/berth-cl-conformance); a summary per spec
# on stdout. Exits non-zero if a spec failed.
source "$(dirname "$0")/lib.sh"
[[ $EUID -eq 0 ]] || cl_die "conformance.sh needs root"
k get --raw /readyz >/dev/null 2>&1 || cl_die "no cluster answers (e2e/cluster/up.sh first)"
eval "$("$CL_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
OUT=${CONFORMANCE_OUT:-/tmp/berth-cl-conformance}
K8S=$("$CL_ROOT/hack/k8s/build.sh" e2e.test agnhost ginkgo) || cl_die "hack/k8s/build.sh e2e.test agnhost ginkgo failed"
BERTH_CLI=$(dirname "${BERTHD:-${CARGO_TARGET_DIR:-$CL_ROOT/target}/debug/berthd}")/berth
[[ -x $BERTH_CLI ]] || cl_die "no berth CLI beside berthd ($BERTH_CLI; cargo build)"
b1() { "$BERTH_CLI" --socket "$(node_sock 1)" "$@"; }
mkdir -p "$OUT"

# digest_of REPO:TAG: its manifest digest in the local registry; fails if the registry lacks it.
digest_of() {
  curl -sf -I -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$REG/v2/${1%:*}/manifests/${1##*:}" | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}' | tr -d '\r'
}
# in_registry REPO:TAG: the local registry has it.
in_registry() { [[ -n $(digest_of "$1") ]]; }
# mirror FROM TO: the registry's REPO:TAG FROM also as TO (pulled, tagged and pushed by berth, which
# keeps the digest), again when FROM changed since (hack/testimages/build.sh rebuilt it).
mirror() {
  local from
  from=$(digest_of "$1") && [[ -n $from ]] || cl_die "$REG/$1 is missing (hack/testimages/build.sh)"
  [[ $(digest_of "$2") == "$from" ]] && return 0
  b1 pull "$REG/$1" >/dev/null && b1 tag "$REG/$1" "$REG/$2" && b1 push "$REG/$2" >/dev/null ||
    cl_die "could not mirror $1 as $2"
  cl_log "mirrored $REG/$1 as $REG/$2"
}
E2E=e2e-test-images
mirror "$E2E/busybox:1.29-2" "$E2E/busybox:1.37.0-2"
mirror "$E2E/nginx:1.14-2" "$E2E/nginx:1.27.0-2"
mirror "$E2E/nginx:1.14-2" "$E2E/nginx:1.28.0-2"
mirror "$E2E/nonewprivs:1.3" "$E2E/nonewprivs:1.4"
mirror "pause:3.9" "pause:3.10.2"
# agnhost: the binary built from k8s.io/kubernetes/test/images/agnhost (dynamically linked, as
# Go links it here) on hack/testimages's Debian image, laid out as its upstream Dockerfile does
# what the selected specs use: /agnhost and the /agnhost-2 link (entrypoint specs), CMD pause,
# /uploads, user-defined-in-image (uid 1000) in group-defined-in-image (gid 50000). IMAGE_REV
# names this recipe: a change to it must bump it, or the registry's older image is kept. The
# lifecycle-hook specs run `curl` in it (upstream's image is Alpine's, with curl): this machine's
# Debian curl goes in /usr/local/lib/curl with the libraries it needs beyond glibc, run by a
# /usr/local/bin/curl wrapper that points the loader there.
IMAGE_REV=r3
manifest_tag() {
  sed -n "s/.*configs\[$1\] = Config{list.PromoterE2eRegistry, \"agnhost\", \"\([^\"]*\)\"}.*/\1/p" \
    "$(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2/test/utils/image/manifest.go"
}
AGNHOST_TAG=$(manifest_tag Agnhost)
AGNHOST_PREV_TAG=$(manifest_tag AgnhostPrev)
[[ -n $AGNHOST_TAG && -n $AGNHOST_PREV_TAG ]] || cl_die "cannot read agnhost's tags from test/utils/image/manifest.go"
if ! in_registry "$E2E/agnhost:$AGNHOST_TAG-$IMAGE_REV"; then
  ctx=$CL_DIR/agnhost-image
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp "$K8S/agnhost" "$ctx/agnhost"
  command -v curl >/dev/null || cl_die "curl not found (it goes into agnhost's image)"
  mkdir -p "$ctx/curl/usr/local/lib/curl" "$ctx/curl/usr/local/bin"
  cp "$(command -v curl)" "$ctx/curl/usr/local/lib/curl/curl"
  ldd "$(command -v curl)" | awk '$3 ~ /^\// {print $3}' |
    grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv)\.so' |
    while read -r lib; do cp -L "$lib" "$ctx/curl/usr/local/lib/curl/"; done
  printf '#!/bin/sh\nLD_LIBRARY_PATH=/usr/local/lib/curl exec /usr/local/lib/curl/curl "$@"\n' > "$ctx/curl/usr/local/bin/curl"
  chmod 755 "$ctx/curl/usr/local/bin/curl"
  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $REG/library/debian:bookworm
COPY agnhost /agnhost
COPY curl/ /
RUN ln -s agnhost /agnhost-2 && mkdir /uploads && \\
    echo 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh' >> /etc/passwd && \\
    printf 'user-defined-in-image:x:1000:\\ngroup-defined-in-image:x:50000:user-defined-in-image\\n' >> /etc/group
EXPOSE 80 8080 8081 9376 5000
ENTRYPOINT ["/agnhost"]
CMD ["pause"]
DOCKERFILE
  # Also as the previous agnhost the specs name (AgnhostPrev: a pod's image is patched from it).
  for tag in "$AGNHOST_PREV_TAG" "$AGNHOST_TAG" "$AGNHOST_TAG-$IMAGE_REV"; do
    b1 build -t "$REG/$E2E/agnhost:$tag" "$ctx" >/dev/null && b1 push "$REG/$E2E/agnhost:$tag" >/dev/null ||
      cl_die "could not build agnhost's image"
  done
  rm -rf "$ctx"
  cl_log "built $REG/$E2E/agnhost:$AGNHOST_TAG"
fi
cat > "$OUT/repo-list.yaml" <<YAML
promoterE2eRegistry: $REG/$E2E
gcRegistry: $REG
gcEtcdRegistry: $REG
dockerLibraryRegistry: $REG/library
buildImageRegistry: $REG/build-image
sigStorageRegistry: $REG/sig-storage
cloudProviderGcpRegistry: $REG/cloud-provider-gcp
YAML

[[ ${1:-} == --images-only ]] && { cl_log "images ready; KUBE_TEST_REPO_LIST=$OUT/repo-list.yaml"; exit 0; }

# The areas of this run, as the start of the specs' full names (sig, then the Describe text).
# Kubectl exec and port-forward have no [Conformance] spec of their own in sig-cli: exec is
# checked by the Pods specs (remote command execution over websockets), port-forward by test.sh.
FOCUS='\[sig-node\] (Pods|Pods Extended|Containers|Container Runtime|Probing container|Container Lifecycle Hook|Security Context|ConfigMap|Secrets|InitContainer)|\[sig-storage\] (ConfigMap|Secrets|EmptyDir|Projected configMap|Projected secret)|\[sig-cli\] Kubectl logs'
# CONFORMANCE_FOCUS replaces those areas (a regular expression on the specs' names), e.g. to
# run again the specs of one area.
FOCUS=${CONFORMANCE_FOCUS:-$FOCUS}
PROCS=${CONFORMANCE_PROCS:-4}
export KUBE_TEST_REPO_LIST=$OUT/repo-list.yaml
cl_log "running the [Conformance] specs of: $FOCUS ($PROCS at a time)"
start=$SECONDS
rc=0
rm -f "$OUT/junit.xml"
(cd "$OUT" && "$K8S/ginkgo" --procs "$PROCS" --focus "($FOCUS) .*\[Conformance\]" \
  --skip '\[Serial\]|\[Disruptive\]|\[Flaky\]' --no-color --timeout 3h \
  --junit-report junit.xml --output-dir "$OUT" "$K8S/e2e.test" -- \
  --kubeconfig "$CL_DIR/admin.kubeconfig" --provider skeleton --kubectl-path "$BIN/kubectl" \
  --non-blocking-taints "node-role.kubernetes.io/control-plane,berth.dev/containerd-node" \
  "$@") > "$OUT/e2e.log" 2>&1 || rc=$?
cl_log "e2e.test exited $rc after $((SECONDS - start))s; log: $OUT/e2e.log"
summary=0
python3 - "$OUT/junit.xml" <<'PY' || summary=$?
import sys, xml.etree.ElementTree as ET
cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
counts = {}
for c in cases:
    name = c.get("name")
    if "[Conformance]" not in name:
        continue
    if c.find("failure") is not None or c.find("error") is not None:
        state = "FAIL"
    elif c.find("skipped") is not None:
        continue
    else:
        state = "PASS"
    counts[state] = counts.get(state, 0) + 1
    print(f"{state}: {name} ({float(c.get('time', 0)):.0f}s)")
if not counts:
    sys.exit("conformance: no spec ran (the focus matched nothing?)")
print("conformance:", ", ".join(f"{v} {k.lower()}ed" if k == "PASS" else f"{v} failed" for k, v in sorted(counts.items())))
PY
((rc == 0)) && exit "$summary"
exit "$rc"
