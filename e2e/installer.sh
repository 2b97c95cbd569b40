#!/usr/bin/env bash
# The DaemonSet installer (manifests/installer/install.sh) against a temp "host root": binaries, unit
# and config land there, systemd's part is played by a stand-in that runs the installed berthd with
# the installed config, crictl talks to it, a second run changes nothing and restarts nothing, and
# --switch-kubelet rewrites kubeadm's flags file (keeping a copy) and restarts kubelet.
# Then the installer image: `berth build` makes it from manifests/installer/Dockerfile and the
# repository root (the base image from the local test registry), and crictl runs it as the
# DaemonSet does (privileged, host PID namespace, a host root at /host) against a second temp host
# root, reaching the systemctl stand-in through the image's nsenter.
source "$(dirname "$0")/lib.sh"

BIN=$(dirname "$BERTHD")
HOST=$(mktemp -d /tmp/bi.XXXXXX)
CALLS=$HOST.calls
# cleanup_host DIR: stops the berthd installed there, unmounts and removes DIR and DIR.*.
cleanup_host() {
  [[ -f $1.pid ]] && kill "$(cat "$1.pid")" 2>/dev/null && sleep 0.3
  awk -v w="$1" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$1" "$1".*
}
cleanup() { cleanup_host "$HOST"; }
# answers ROOT: the berthd installed under ROOT answers crictl within 20 s (install.sh waits for its
# socket only; a loaded machine can take longer than crictl's 2 s to finish berthd's start).
answers() {
  local i
  for ((i = 0; i < 40; i++)); do
    crictl --runtime-endpoint "unix://$1/run/berth/berth.sock" version 2>/dev/null |
      grep -q 'RuntimeName:  berth' && return 0
    sleep 0.5
  done
  return 1
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
image:
  disk_reserve: 1%  # see e2e/lib.sh
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
answers "$HOST" ||
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

# ---------------------------------------------------------------------------------------------
# The installer image, built by berth from the repository root.
eval "$("$E2E_ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
BASE=$REG/library/debian:bookworm
IMG=$REG/e2e-installer/berth-installer:t$RANDOM$RANDOM
HOST2=$(mktemp -d /tmp/bi2.XXXXXX)
CALLS2=$HOST2.calls
# The Dockerfile copies the binaries from the context-relative BIN (its .dockerignore lets
# target/*/berth* in): the build's own dir when it is the repository's target/, else a copy there.
if [[ $BIN == "$E2E_ROOT"/target/* && ${BIN#"$E2E_ROOT"/target/} != */* ]]; then
  REL=${BIN#"$E2E_ROOT"/}
else
  mkdir -p "$E2E_ROOT/target"
  STAGE=$(mktemp -d "$E2E_ROOT/target/installer-e2e.XXXXXX")
  for bin in berthd berth-shim berth; do cp -l "$BIN/$bin" "$STAGE/" 2>/dev/null || cp "$BIN/$bin" "$STAGE/"; done
  REL=${STAGE#"$E2E_ROOT"/}
fi
cleanup() {
  [[ -n ${WATCHER:-} ]] && { kill "$WATCHER" 2>/dev/null || true; }
  stop_berthd
  cleanup_host "$HOST"
  cleanup_host "$HOST2"
  [[ -n ${STAGE:-} ]] && rm -rf "$STAGE"
  return 0
}
start_berthd "registries:
  \"$REG\":
    insecure: true"
trap cleanup EXIT
b() { "$BIN/berth" --socket "$SOCK" "$@"; }

out=$(cd "$E2E_ROOT" && b build -f manifests/installer/Dockerfile --build-arg "BASE=$BASE" \
  --build-arg "BIN=$REL" -t "$IMG" . 2>&1) || fail "berth build of the installer image: $out"
grep -q '^built sha256:' <<<"$out" || fail "no image id in: $out"
hist=$(b history "$IMG")
grep -qE 'ENTRYPOINT \["/opt/berth/install.sh"\]' <<<"$hist" || fail "history has no ENTRYPOINT: $hist"
[[ $(grep -cE '^[^ ]+ +yes +COPY ' <<<"$hist") == 3 ]] || fail "history: not three COPY layers: $hist"
pass "berth build -f manifests/installer/Dockerfile from the repository root ($REL, base $BASE)"

# "systemd" for the image: the stand-in records each call (it runs in this script's namespaces,
# entered with the image's nsenter); a watcher here starts the installed berthd when asked to, on
# a config of this test (the image's own config, installed on the host root, names the real /run).
cat >"$HOST2.systemctl" <<STUB
#!/usr/bin/env bash
echo "\$*" >>"$CALLS2"
STUB
chmod +x "$HOST2.systemctl"
: >"$CALLS2"
cat >"$HOST2.config.yaml" <<YAML
root_dir: $HOST2/var/lib/berth
state_dir: $HOST2/run/berth
grpc:
  socket: $HOST2/run/berth/berth.sock
image:
  disk_reserve: 1%  # see e2e/lib.sh
YAML
(
  for _ in $(seq 600); do
    if grep -qx 'systemctl restart berthd.service' "$CALLS2"; then
      setsid "$HOST2/usr/local/bin/berthd" --config "$HOST2.config.yaml" >"$HOST2.log" 2>&1 &
      echo $! >"$HOST2.pid"
      exit 0
    fi
    sleep 0.1
  done
) &
WATCHER=$!

# The DaemonSet's pod: privileged, host PID namespace, the host root at /host, args only (the
# image's ENTRYPOINT runs). nsenter targets this script, not PID 1 (not enterable on every machine).
cat >"$WORK/ipod.json" <<JSON
{"metadata": {"name": "berth-installer", "namespace": "kube-system", "uid": "inst-$RANDOM", "attempt": 0},
 "log_directory": "$WORK/logs",
 "linux": {"security_context": {"privileged": true, "namespace_options": {"pid": 2}}}}
JSON
cat >"$WORK/ictr.json" <<JSON
{"metadata": {"name": "install"}, "image": {"image": "$IMG"}, "args": ["--once"],
 "envs": [{"key": "HOST_ROOT", "value": "/host"}, {"key": "WAIT_SECONDS", "value": "50"},
          {"key": "HOST_EXEC", "value": "nsenter --target $$ --mount --uts --ipc --net --pid -- $HOST2.systemctl"}],
 "mounts": [{"container_path": "/host", "host_path": "$HOST2"}],
 "log_path": "install.log",
 "linux": {"security_context": {"privileged": true, "namespace_options": {"pid": 2}}}}
JSON
POD=$(crictl_b runp "$WORK/ipod.json") || fail "runp installer pod"
CTR=$(crictl_b create "$POD" "$WORK/ictr.json" "$WORK/ipod.json") || fail "create installer container"
crictl_b start "$CTR" >/dev/null || fail "start installer container"
for _ in $(seq 600); do
  [[ $(crictl_b inspect -o go-template --template '{{.status.state}}' "$CTR") == CONTAINER_EXITED ]] && break
  sleep 0.1
done
code=$(crictl_b inspect -o go-template --template '{{.status.exitCode}}' "$CTR")
[[ $code == 0 ]] || fail "installer image exited with $code: $(cat "$WORK/logs/install.log" 2>&1; cat "$HOST2.log" 2>&1)"
grep -q 'berth-install: berthd is up' "$WORK/logs/install.log" || fail "install log: $(cat "$WORK/logs/install.log")"
for bin in berthd berth-shim berth; do
  cmp -s "$BIN/$bin" "$HOST2/usr/local/bin/$bin" || fail "image's $bin not installed"
  [[ -x $HOST2/usr/local/bin/$bin ]] || fail "image's $bin not executable"
done
cmp -s "$E2E_ROOT/manifests/berthd.service" "$HOST2/etc/systemd/system/berthd.service" || fail "image's unit not installed"
cmp -s "$E2E_ROOT/manifests/config.yaml" "$HOST2/etc/berth/config.yaml" || fail "image's config not installed"
[[ $(cat "$CALLS2") == $'systemctl daemon-reload\nsystemctl enable berthd.service\nsystemctl restart berthd.service' ]] ||
  fail "installer image ran: $(cat "$CALLS2")"
answers "$HOST2" ||
  fail "berthd installed by the image does not answer crictl"
crictl_b rmp -f "$POD" >/dev/null
pass "the installer image, run as the DaemonSet runs it, installs berth through its nsenter"
echo "e2e/installer.sh: all passed"
