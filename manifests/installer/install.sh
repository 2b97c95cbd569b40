#!/usr/bin/env bash
# Installs berth on the node it runs on, from inside the privileged pod of
# manifests/installer/daemonset.yaml (the host's / mounted at $HOST_ROOT, the host's PID namespace
# shared so nsenter reaches systemd), or by hand on a node with HOST_ROOT=/ HOST_EXEC=.
#
#   install.sh [--switch-kubelet] [--once]
#
# 1. copies berthd, berth-shim and berth from $BERTH_BIN to $HOST_ROOT/usr/local/bin (each through a
#    temp file and rename, so running shims keep their old binary and nothing half-written runs);
# 2. writes $HOST_ROOT/etc/berth/config.yaml from $BERTH_CONFIG unless the node already has one;
# 3. installs the systemd unit and enables berthd; restarts it when a binary or the unit changed
#    (pods keep running: the unit stops only berthd, never its shims);
# 4. waits until berthd's socket answers;
# 5. with --switch-kubelet, points kubelet at berth (kubeadm's kubeadm-flags.env, or the kubelet
#    config file's containerRuntimeEndpoint), keeping a .pre-berth copy, and restarts kubelet;
# 6. sleeps, so the DaemonSet's pod stays Running (unless --once).
set -euo pipefail

HOST_ROOT=${HOST_ROOT:-/host}
HOST_ROOT=${HOST_ROOT%/}
BERTH_BIN=${BERTH_BIN:-/opt/berth/bin}
BERTH_CONFIG=${BERTH_CONFIG:-/opt/berth/config.yaml}
BERTH_UNIT=${BERTH_UNIT:-/opt/berth/berthd.service}
SOCKET=${BERTH_SOCKET:-/run/berth/berth.sock}
WAIT_SECONDS=${WAIT_SECONDS:-60}
# How a command runs on the host: in the host's namespaces through PID 1 (hostPID pod).
read -r -a HOST_EXEC <<<"${HOST_EXEC-nsenter --target 1 --mount --uts --ipc --net --pid --}"

switch_kubelet=false once=false
for arg in "$@"; do
  case $arg in
    --switch-kubelet) switch_kubelet=true ;;
    --once) once=true ;;
    *) echo "install.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { echo "berth-install: $*"; }
host() { "${HOST_EXEC[@]}" "$@"; }

# Copies $1 to $2 through a temp file and rename; says whether anything changed (exit 0 = changed).
install_file() {
  local src=$1 dst=$2 mode=$3
  if [[ -f $dst ]] && cmp -s "$src" "$dst"; then return 1; fi
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst.berth-new"
  chmod "$mode" "$dst.berth-new"
  mv -f "$dst.berth-new" "$dst"
  log "installed $dst"
}

changed=false
for bin in berthd berth-shim berth; do
  [[ -x $BERTH_BIN/$bin ]] || { echo "install.sh: $BERTH_BIN/$bin missing" >&2; exit 1; }
  if install_file "$BERTH_BIN/$bin" "$HOST_ROOT/usr/local/bin/$bin" 0755; then changed=true; fi
done
if install_file "$BERTH_UNIT" "$HOST_ROOT/etc/systemd/system/berthd.service" 0644; then changed=true; fi

if [[ -e $HOST_ROOT/etc/berth/config.yaml ]]; then
  log "keeping the node's /etc/berth/config.yaml"
else
  install_file "$BERTH_CONFIG" "$HOST_ROOT/etc/berth/config.yaml" 0644 || true
fi

host systemctl daemon-reload
host systemctl enable berthd.service
if $changed; then
  host systemctl restart berthd.service
else
  host systemctl start berthd.service
fi

log "waiting for $SOCKET"
for ((i = 0; i < WAIT_SECONDS * 5; i++)); do
  [[ -S $HOST_ROOT$SOCKET ]] && break
  sleep 0.2
done
[[ -S $HOST_ROOT$SOCKET ]] || { echo "install.sh: berthd did not create $SOCKET in ${WAIT_SECONDS}s" >&2; exit 1; }
log "berthd is up"

endpoint="unix://$SOCKET"
# Rewrites the runtime endpoint in kubelet's file $1 (the match of $2 becomes $3). Prints "switched",
# "already" or nothing when the file or the setting is absent.
switch_file() {
  local file=$1 pattern=$2 replacement=$3
  [[ -f $file ]] || return 0
  if grep -qF -- "$replacement" "$file"; then echo already; return 0; fi
  grep -qE -- "$pattern" "$file" || return 0
  [[ -f $file.pre-berth ]] || cp -p "$file" "$file.pre-berth"
  sed -i -E "s#$pattern#$replacement#" "$file"
  echo switched
}
if $switch_kubelet; then
  result=$(switch_file "$HOST_ROOT/var/lib/kubelet/kubeadm-flags.env" \
    '--container-runtime-endpoint=[^ "]*' "--container-runtime-endpoint=$endpoint")
  if [[ -z $result ]]; then
    result=$(switch_file "$HOST_ROOT/var/lib/kubelet/config.yaml" \
      '^containerRuntimeEndpoint:.*' "containerRuntimeEndpoint: $endpoint")
  fi
  case $result in
    switched) log "pointed kubelet at $endpoint"; host systemctl restart kubelet.service ;;
    already) log "kubelet already uses $endpoint" ;;
    *) echo "install.sh: found no kubelet runtime endpoint to switch (kubeadm-flags.env or config.yaml)" >&2; exit 1 ;;
  esac
fi

$once && exit 0
log "installed; sleeping"
exec sleep infinity
