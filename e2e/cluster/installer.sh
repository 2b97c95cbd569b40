# e2e/cluster/test.sh, part 5: berth's DaemonSet installer on the containerd node (ctrd-node.sh).
# The installer image is built by berth (node 1's berthd) from manifests/installer/Dockerfile and
# pushed to the local registry; manifests/installer/daemonset.yaml is applied with four changes
# only this cluster needs: that image, `--switch-kubelet`, the node's host root as the hostPath
# (not this machine's /) and HOST_EXEC reaching the node's stand-in systemd through nsenter.

N3=$(node_name "$CTRD_NODE")
H3=$(node_host "$CTRD_NODE")
D3=$(node_dir "$CTRD_NODE")
source "$CL_ROOT/e2e/cluster/ctrd-node.sh"

# on_n3_pod NAME: a busybox pod pinned to the containerd node, tolerating its taint.
on_n3_pod() {
  busybox_pod "$1" "$N3" 'sleep 3600' "" \
"  tolerations: [{key: berth.dev/containerd-node, operator: Exists, effect: NoSchedule}]"
}

before_switch() {
  local uid
  [[ $(k get node "$N3" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}') == containerd://* ]] ||
    bad "$N3 does not start on containerd" || return
  on_n3_pod on-containerd
  wait_ready 120 on-containerd || bad "pod on containerd not Ready: $(kn describe pod on-containerd | tail -5)" || return
  uid=$(kn get pod on-containerd -o jsonpath='{.metadata.uid}')
  [[ -n $(crictl_ctrd pods -q --label "io.kubernetes.pod.uid=$uid" --state ready) ]] ||
    bad "containerd does not run on-containerd: $(crictl_ctrd pods)" || return
}
check "$N3 runs Debian's containerd: a pod runs there" before_switch

installer_image() {
  local bin rel stage out
  bin=$(dirname "${BERTHD:-${CARGO_TARGET_DIR:-$CL_ROOT/target}/debug/berthd}")
  # The Dockerfile copies target/*/berth* from the context (.dockerignore): a hard-linked stage.
  mkdir -p "$CL_ROOT/target"
  stage=$(mktemp -d "$CL_ROOT/target/cl-installer.XXXXXX")
  STAGES+=("$stage")
  for b in berthd berth-shim berth; do cp -l "$bin/$b" "$stage/" 2>/dev/null || cp "$bin/$b" "$stage/"; done
  rel=${stage#"$CL_ROOT"/}
  INSTALLER_IMG=$REGISTRY/berth-cl/berth-installer:t$RANDOM$RANDOM
  b1() { "$bin/berth" --socket "$(node_sock 1)" "$@"; }
  out=$(cd "$CL_ROOT" && b1 build -f manifests/installer/Dockerfile --build-arg "BASE=$REGISTRY/library/debian:bookworm" \
    --build-arg "BIN=$rel" -t "$INSTALLER_IMG" . 2>&1) || bad "berth build: $out" || return
  out=$(b1 push "$INSTALLER_IMG" 2>&1) || bad "berth push: $out" || return
  curl -sf "http://$REGISTRY/v2/${INSTALLER_IMG#*/}" >/dev/null 2>&1 ||
    curl -sf "http://$REGISTRY/v2/berth-cl/berth-installer/manifests/${INSTALLER_IMG##*:}" -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' >/dev/null ||
    bad "$INSTALLER_IMG is not in the registry after the push" || return
}
REGISTRY=$BERTH_TEST_REGISTRY
STAGES=()
check "berth builds the installer image (manifests/installer/Dockerfile) and pushes it to the registry" installer_image

switch() {
  local holder
  [[ -n ${INSTALLER_IMG:-} ]] || bad "no installer image" || return
  holder=$(pid_of "holder-n$CTRD_NODE") || bad "no holder process of $N3" || return
  k label node "$N3" berth.dev/install=true --overwrite >/dev/null
  k create --dry-run=client -o json -f "$CL_ROOT/manifests/installer/daemonset.yaml" |
    jq --arg img "$INSTALLER_IMG" --arg host "$H3" --arg exec "nsenter --target $holder --mount -- $D3/systemctl" '
      .spec.template.spec.containers[0] |= (.image = $img | .args = ["--switch-kubelet"] |
        .env += [{name: "HOST_EXEC", value: $exec}]) |
      .spec.template.spec.volumes[0].hostPath.path = $host' | k apply -f - >/dev/null ||
    bad "kubectl apply of the DaemonSet failed" || return
  # The installer (on containerd) installs berth and restarts kubelet, which comes back on berth.
  wait_for 240 eval '[[ $(k get node "$N3" -o jsonpath="{.status.nodeInfo.containerRuntimeVersion}") == berth://* ]]' ||
    bad "$N3 did not switch: $(k get node "$N3" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}'); systemctl calls: $(tr '\n' ';' < "$D3/systemctl.calls"); installer: $(k -n kube-system logs ds/berth-installer 2>&1 | tail -5)" || return
  for b in berthd berth-shim berth; do
    [[ -x $H3/usr/local/bin/$b ]] || bad "$b not installed in $N3's /usr/local/bin" || return
  done
  grep -q "^containerRuntimeEndpoint: unix:///run/berth/berth.sock" "$H3/var/lib/kubelet/config.yaml" ||
    bad "kubelet config not switched: $(grep containerRuntimeEndpoint "$H3/var/lib/kubelet/config.yaml")" || return
  [[ -f $H3/var/lib/kubelet/config.yaml.pre-berth ]] || bad "no .pre-berth copy of kubelet's config" || return
  grep -qx "systemctl restart kubelet.service" "$D3/systemctl.calls" || bad "kubelet was not restarted" || return
  crictl_n "$CTRD_NODE" version | grep -q 'RuntimeName:  berth' || bad "berth does not answer on $(node_sock "$CTRD_NODE")" || return
}
check "the DaemonSet installer (--switch-kubelet) installs berth on $N3 and kubelet restarts on it" switch

after_switch() {
  local uid
  on_n3_pod on-berth
  wait_ready 120 on-berth || bad "pod on berth not Ready: $(kn describe pod on-berth | tail -5)" || return
  uid=$(kn get pod on-berth -o jsonpath='{.metadata.uid}')
  [[ -n $(crictl_n "$CTRD_NODE" pods -q --label "io.kubernetes.pod.uid=$uid" --state ready) ]] ||
    bad "berth does not run on-berth ($uid): $(crictl_n "$CTRD_NODE" pods)" || return
  [[ -z $(crictl_ctrd pods -q --label "io.kubernetes.pod.uid=$uid") ]] || bad "containerd runs on-berth too" || return
  [[ $(kn exec on-berth -- echo via-berth) == via-berth ]] || bad "exec into on-berth failed" || return
  # The DaemonSet's pod is back too, now on berth, and changed nothing: berthd kept, no restart.
  wait_for 120 eval '[[ -n $(crictl_n "$CTRD_NODE" pods -q --namespace "^kube-system\$" --state ready) ]]' ||
    bad "the installer's pod does not run on berth: $(crictl_n "$CTRD_NODE" pods)" || return
  wait_for 60 eval 'k -n kube-system logs ds/berth-installer 2>/dev/null | grep -q "kubelet already uses"' ||
    bad "the installer on berth: $(k -n kube-system logs ds/berth-installer 2>&1 | tail -5)" || return
  [[ $(grep -c "restart" "$D3/systemctl.calls") == 2 ]] ||
    bad "restarts: $(tr '\n' ';' < "$D3/systemctl.calls")" || return
}
check "after the switch, new pods on $N3 run on berth (crictl on berth's socket) and the installer re-runs idempotently" after_switch

k -n kube-system delete daemonset berth-installer --ignore-not-found --wait=false >/dev/null 2>&1 || true
for stage in "${STAGES[@]}"; do rm -rf "$stage"; done
