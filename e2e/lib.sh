# Shared helpers for berth's end-to-end scripts: start a real berthd on a temp dir and drive it
# with real crictl. Source this file; it defines `start_berthd`, `crictl_b` and `fail`.

set -euo pipefail

E2E_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BERTHD="${BERTHD:-$E2E_ROOT/target/debug/berthd}"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# start_berthd [extra yaml]: berthd on a fresh temp dir; sets WORK, SOCK, BERTHD_PID.
start_berthd() {
  [[ -x "$BERTHD" ]] || fail "berthd not built at $BERTHD (run cargo build)"
  WORK=$(mktemp -d /tmp/be2e.XXXXXX)  # short: pod sockets live under it
  chmod 711 "$WORK"  # searchable: containers in a user namespace reach their rootfs under it
  SOCK="$WORK/state/berth.sock"
  cat > "$WORK/config.yaml" <<YAML
root_dir: $WORK/root
state_dir: $WORK/state
grpc:
  socket: $SOCK
${1:-}
YAML
  # BERTH_E2E_CGROUP_DRIVER: the cgroup driver (e2e/vm/suite.sh runs the scripts with both).
  if [[ -n ${BERTH_E2E_CGROUP_DRIVER:-} && ${1:-} != *"cgroup:"* ]]; then
    printf 'cgroup:\n  driver: %s\n' "$BERTH_E2E_CGROUP_DRIVER" >> "$WORK/config.yaml"
  fi
  # This machine's disk often sits near the default reserve (15%): scripts keep only 1% free, so
  # their pulls and builds do not depend on the host's disk.
  if [[ ${1:-} != *"image:"* ]]; then
    printf 'image:\n  disk_reserve: 1%%\n' >> "$WORK/config.yaml"
  fi
  "$BERTHD" --config "$WORK/config.yaml" > "$WORK/berthd.log" 2>&1 &
  BERTHD_PID=$!
  trap stop_berthd EXIT
  for _ in $(seq 1200); do  # 60 s: the e2e/vm guest is slow to start berthd
    [[ -S "$SOCK" ]] && return 0
    kill -0 "$BERTHD_PID" 2>/dev/null || { cat "$WORK/berthd.log" >&2; fail "berthd exited at start"; }
    sleep 0.05
  done
  fail "berthd did not create $SOCK"
}

stop_berthd() {
  if [[ -n "${BERTHD_PID:-}" ]] && kill -0 "$BERTHD_PID" 2>/dev/null; then
    # Pods (and their shims) outlive berthd by design: remove them first.
    for pod in $(crictl_b pods -q 2>/dev/null); do crictl_b rmp -f "$pod" >/dev/null 2>&1 || true; done
    kill -TERM "$BERTHD_PID"; wait "$BERTHD_PID" || true
  fi
  if [[ -n "${WORK:-}" ]]; then
    awk -v w="$WORK" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  [[ -n "${WORK:-}" && "${KEEP_WORK:-0}" != 1 ]] && rm -rf "$WORK"
  return 0
}

# BERTH_E2E_CRICTL_TIMEOUT: crictl's per-call timeout (its default, 2s, is too short in e2e/vm).
crictl_b() {
  crictl --timeout "${BERTH_E2E_CRICTL_TIMEOUT:-2s}" --runtime-endpoint "unix://$SOCK" \
    --image-endpoint "unix://$SOCK" "$@"
}
