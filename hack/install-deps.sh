#!/usr/bin/env bash
# Installs every system dependency berth's build, daemon and tests need. Idempotent: a second run
# changes nothing and returns quickly.
set -euo pipefail

APT_PACKAGES=(
  protobuf-compiler        # k8s-cri's build compiles the CRI protos
  containernetworking-plugins
  docker-registry          # distribution v2: the local registry the tests pull from
  busybox-static           # the rootfs of the test images
  debootstrap              # the minbase Debian test image
  build-essential dpkg-dev # critest images (busybox built from source, static test programs); g++ builds libFuzzer for e2e/fuzz.sh
  iptables iproute2 util-linux
  runc crun                # external OCI runtime handlers
  qemu-system-x86 systemd dbus  # e2e/vm: the cgroup v2 guest boots the host's / with systemd
  containerd               # only for benchmarks, run on its own socket beside berth
  apache2-utils            # htpasswd for the authenticated registry
  openssl curl jq zstd pigz python3 python3-pip hyperfine
)
CRI_TOOLS_VERSION=v1.37.0

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's packages start services we never want on a test node: berth runs beside them only when a
# benchmark starts them explicitly on their own sockets.
for svc in containerd docker-registry; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

# tests/grpc_clients.rs drives berthd with gRPC C-core through Python's grpcio. Debian 12's
# python3-grpcio (1.51) predates the unix-socket :authority that test is about (sent since 1.57)
# and its python3-grpc-tools (1.14) is from 2018, so both come from PyPI; root's pip on Debian
# needs --break-system-packages (PEP 668) to install beside the system's packages.
if ! python3 - 2>/dev/null <<'PY'
import grpc, grpc_tools
assert tuple(int(p) for p in grpc.__version__.split(".")[:2]) >= (1, 57)
PY
then
  python3 -m pip install -q --break-system-packages -r "$(dirname "$0")/python-requirements.txt"
fi

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
GOBIN="${GOBIN:-$HOME/go/bin}"
if ! "$GOBIN/crictl" --version 2>/dev/null | grep -q "${CRI_TOOLS_VERSION#v}"; then
  go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
fi
# critest is a Go test binary (cmd/critest has only _test.go files), so `go install` cannot build
# it: compile it from the module's source in the module cache instead.
if [[ "$(cat "$GOBIN/critest.version" 2>/dev/null)" != "$CRI_TOOLS_VERSION" ]]; then
  src=$(go mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" | jq -r .Dir)
  (cd "$src" && go test -c -o "$GOBIN/critest" ./cmd/critest)
  echo "$CRI_TOOLS_VERSION" > "$GOBIN/critest.version"
fi
ln -sf "$GOBIN/crictl" /usr/local/bin/crictl
ln -sf "$GOBIN/critest" /usr/local/bin/critest

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
