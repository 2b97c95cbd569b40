#!/usr/bin/env bash
# Puts this machine back in the state a fresh machine would be in for hack/test-all.sh, so that a
# missing install or build step fails here rather than on CI: removes every cache and piece of state
# the test run relies on and would otherwise find from an earlier run.
#
#   hack/fresh.sh        (hack/test-all.sh --fresh runs it first)
#
# Removed: the test registries (stopped) with their storage, CA and passwords, the built test images
# and the download/debootstrap caches ($BERTH_TEST_DIR, default /var/lib/berth-test); crictl and
# critest (binaries, version stamps, /usr/local/bin links); the Kubernetes binaries hack/k8s builds; the guest kernel e2e/vm caches;
# the CNI config hack/cni-config.sh installs (only if it is ours, byte for byte); berth's default data
# and state dirs (/var/lib/berth, /run/berth) after unmounting what berth mounted under them; the
# Python packages hack/install-deps.sh installs with pip; the critest reports in target/critest.
# Kept: Debian packages (removing them would touch the host's own services), the Go module cache and
# the cargo registry and target dir (those only hold what the registries serve or the source builds).
# Refuses to run while a berthd serves the default socket.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "fresh: needs root" >&2; exit 1; }
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

TEST_DIR=${BERTH_TEST_DIR:-/var/lib/berth-test}
GOBIN=${GOBIN:-$HOME/go/bin}
K8S_CACHE=${BERTH_K8S_CACHE:-/var/cache/berth-k8s}
VM_CACHE=${BERTH_VM_CACHE:-/var/cache/berth-vm}
DATA_DIRS=(/var/lib/berth /run/berth)
CNI_CONF=/etc/cni/net.d/10-berth.conflist

say() { echo "fresh: $*"; }

if [[ -S /run/berth/berth.sock ]] && ss -xlH 2>/dev/null | grep -qF /run/berth/berth.sock; then
  echo "fresh: a berthd serves /run/berth/berth.sock; stop it first" >&2
  exit 1
fi

# Unmounts every mount below $1, deepest first; $1 itself stays mounted if it is a mount point (a
# disk given to berth, say).
unmount_under() {
  local dir=$1 mp
  findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | sort -r |
    while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
}

# Removes the tree at $1; a mount point itself (a dir bound there on purpose) is only emptied.
remove_tree() {
  say "removing $1"
  if mountpoint -q "$1"; then
    find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +
  else
    rm -rf --one-file-system "$1"
  fi
}

# Shims of the default data dirs keep namespace pins mounted; end them before the unmount.
for pid in $(pgrep -x berth-shim || true); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE '(^| )/run/berth/'; then
    say "stopping berth-shim $pid of /run/berth"
    kill -9 "$pid" 2>/dev/null || true
  fi
done

if [[ -x hack/registry.sh && -d $TEST_DIR ]]; then
  BERTH_TEST_DIR=$TEST_DIR hack/registry.sh stop >/dev/null 2>&1 || true
fi
for dir in "$TEST_DIR" "${DATA_DIRS[@]}"; do
  if [[ -e $dir ]]; then
    unmount_under "$dir"
    remove_tree "$dir"
  fi
done

for f in "$GOBIN/crictl" "$GOBIN/critest" "$GOBIN/critest.version" /usr/local/bin/crictl /usr/local/bin/critest; do
  [[ -e $f || -L $f ]] && { say "removing $f"; rm -f "$f"; }
done
for cache in "$K8S_CACHE" "$VM_CACHE"; do
  [[ -d $cache ]] && remove_tree "$cache"
done
if [[ -f $CNI_CONF ]] && cmp -s "$CNI_CONF" manifests/cni/10-berth.conflist; then
  say "removing $CNI_CONF"
  rm -f "$CNI_CONF"
fi
if [[ -f hack/python-requirements.txt ]]; then
  mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[<>=!~ ].*//' hack/python-requirements.txt | grep -v '^$')
  if ((${#pkgs[@]})); then
    say "uninstalling Python packages: ${pkgs[*]}"
    python3 -m pip uninstall -y -q --break-system-packages "${pkgs[@]}" >/dev/null 2>&1 || true
  fi
fi
rm -rf target/critest
say "done: the next hack/test-all.sh starts from what a fresh machine has"
