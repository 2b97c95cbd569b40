#!/usr/bin/env bash
# Gives this machine a pod network for development and CI: installs manifests/cni/10-berth.conflist
# (bridge berth0 + host-local 10.88.0.0/16 + portmap + bandwidth) into the CNI conf dir unless a
# network config is already there, and turns on IPv4 forwarding so pods reach beyond the node.
# The pod's loopback is brought up by berth-shim itself, so the chain has no loopback plugin.
# Usage: hack/cni-config.sh [conf dir]   (default /etc/cni/net.d). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
conf_dir=${1:-/etc/cni/net.d}

mkdir -p "$conf_dir"
if compgen -G "$conf_dir/*.conflist" >/dev/null || compgen -G "$conf_dir/*.conf" >/dev/null ||
  compgen -G "$conf_dir/*.json" >/dev/null; then
  echo "cni-config: $conf_dir already has a network config; leaving it"
else
  install -m 0644 manifests/cni/10-berth.conflist "$conf_dir/10-berth.conflist"
  echo "cni-config: installed $conf_dir/10-berth.conflist"
fi

for plugin in bridge host-local portmap bandwidth; do
  [[ -x /usr/lib/cni/$plugin || -x /opt/cni/bin/$plugin ]] ||
    { echo "cni-config: CNI plugin $plugin missing (hack/install-deps.sh installs them)" >&2; exit 1; }
done
sysctl -qw net.ipv4.ip_forward=1
