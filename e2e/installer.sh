#!/usr/bin/env bash
# The DaemonSet installer (manifests/installer/install.sh) against a temp "host root": binaries, unit
# and config land there, systemd's part is played by a stand-in that runs the installed berthd with
# the installed config, crictl talks to it, a second run changes nothing and restarts nothing, and
# --switch-kubelet rewrites kubeadm's flags file (keeping a copy) and restarts kubelet.
source "$(dirname "$0")/lib.sh"

BIN=$(dirname "$BERTHD")
HOST=$(mktemp -d /tmp/bi.XXXXXX)
CALLS=$HOST.calls
cleanup() {
  [[ -f $HOST.pid ]] && kill "$(cat "$HOST.pid")" 2>/dev/null && sleep 0.3
  awk -v w="$HOST" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$HOST" "$HOST".*
}
trap cleanup EXIT

# The stand-in for `nsenter ... systemctl`: records each call; start/restart run the installed daemon.
cat >"$HOST.systemctl" <<STUB
#!/usr/bin/env bash
echo "\$*" >>"$CALLS"
[[ \$1 == systemctl && \$3 == berthd.service ]] || exit 0
case \$2 in
  start|restart)
    [[ -f $HOST.pid ]] && { kill "\$(cat $HOST.pid)"; while kill -0 "\$(cat $HOST.pid)" 2>/dev/null; do sleep 0.05; done; }
    rm -f $HOST/run/berth/berth.sock
    setsid "$HOST/usr/local/bin/berthd" --config "$HOST/etc/berth/config.yaml" >"$HOST.log" 2>&1 &
    echo \$! >"$HOST.pid" ;;
esac
STUB
chmod +x "$HOST.systemctl"
cat >"$HOST.config.yaml" <<YAML
root_dir: $HOST/var/lib/berth
state_dir: $HOST/run/berth
grpc:
  socket: $HOST/run/berth/berth.sock
YAML
mkdir -p "$HOST/var/lib/kubelet"
echo 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"' \
  >"$HOST/var/lib/kubelet/kubeadm-flags.env"

install() {
  HOST_ROOT=$HOST HOST_EXEC="$HOST.systemctl" BERTH_BIN=$BIN BERTH_CONFIG=$HOST.config.yaml \
    BERTH_UNIT="$E2E_ROOT/manifests/berthd.service" WAIT_SECONDS=20 \
    "$E2E_ROOT/manifests/installer/install.sh" --once "$@"
}

install >"$HOST.out" 2>&1 || { cat "$HOST.out" "$HOST.log" >&2; fail "first install"; }
for bin in berthd berth-shim berth; do
  cmp -s "$BIN/$bin" "$HOST/usr/local/bin/$bin" || fail "$bin not installed"
  [[ -x $HOST/usr/local/bin/$bin ]] || fail "$bin not executable"
done
cmp -s "$E2E_ROOT/manifests/berthd.service" "$HOST/etc/systemd/system/berthd.service" || fail "unit not installed"
cmp -s "$HOST.config.yaml" "$HOST/etc/berth/config.yaml" || fail "config not installed"
[[ $(cat "$CALLS") == $'systemctl daemon-reload\nsystemctl enable berthd.service\nsystemctl restart berthd.service' ]] ||
  fail "first install ran: $(cat "$CALLS")"
crictl --runtime-endpoint "unix://$HOST/run/berth/berth.sock" version | grep -q 'RuntimeName:  berth' ||
  fail "installed berthd does not answer crictl"
pass "first install: binaries, unit, config, berthd answers crictl"

# A node's own config is kept; unchanged binaries mean start (a no-op when running), not restart.
echo "# edited on the node" >>"$HOST/etc/berth/config.yaml"
: >"$CALLS"
pid=$(cat "$HOST.pid")
install >"$HOST.out" 2>&1 || { cat "$HOST.out" >&2; fail "second install"; }
grep -q 'edited on the node' "$HOST/etc/berth/config.yaml" || fail "second install overwrote the node's config"
grep -q restart "$CALLS" && fail "second install restarted berthd: $(cat "$CALLS")"
pass "second install keeps the node's config and does not restart berthd ($pid)"

: >"$CALLS"
install --switch-kubelet >"$HOST.out" 2>&1 || { cat "$HOST.out" >&2; fail "install --switch-kubelet"; }
grep -q -- "--container-runtime-endpoint=unix:///run/berth/berth.sock --pod-infra" "$HOST/var/lib/kubelet/kubeadm-flags.env" ||
  fail "kubeadm-flags.env not switched: $(cat "$HOST/var/lib/kubelet/kubeadm-flags.env")"
grep -q containerd.sock "$HOST/var/lib/kubelet/kubeadm-flags.env.pre-berth" || fail "no .pre-berth copy"
grep -qx 'systemctl restart kubelet.service' "$CALLS" || fail "kubelet not restarted: $(cat "$CALLS")"
: >"$CALLS"
install --switch-kubelet >"$HOST.out" 2>&1 || fail "second --switch-kubelet"
grep -q kubelet "$CALLS" && fail "kubelet restarted though already switched"
pass "--switch-kubelet rewrites kubeadm's flags once, keeps a copy, restarts kubelet once"
