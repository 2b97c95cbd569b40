#!/usr/bin/env bash
# Installs what berth needs, builds it, and runs berthd in the foreground with its embedded
# defaults (or /etc/berth/config.yaml when present), with a bridge pod network in /etc/cni/net.d
# unless one is there (hack/cni-config.sh). Extra arguments go to berthd.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "run-berthd: berthd needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
hack/install-deps.sh
hack/cni-config.sh
cargo build --release --bins
exec target/release/berthd "$@"
