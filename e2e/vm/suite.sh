#!/usr/bin/env bash
# berth's cgroup-touching tests on pure cgroup v2: built here, run in an e2e/vm/run.sh guest.
#
#   e2e/vm/suite.sh            build the test binaries, boot the guest, run the plan below
#   e2e/vm/suite.sh --no-build run the binaries the last `cargo test --no-run` left (CI builds first)
#
# The plan is a list of `<cargo test target> <filter>...` lines: the library's cgroup module (its
# host tests then run on a v2 host, in Mode::V2, and the systemd driver's against the guest's
# systemd) and the integration tests whose subject is a cgroup (limits, updates, stats, OOM,
# placement of shims, device isolation, the cgroup driver, runc and crun). Every line but the
# library's runs once per cgroup driver (DRIVERS; the harness reads BERTH_TEST_CGROUP_DRIVER),
# and so do the crictl scripts in E2E (e2e/lib.sh reads BERTH_E2E_CGROUP_DRIVER).
# The test registries run on the host; the guest reaches them at the same addresses. Exits
# non-zero when a test fails or the guest does not boot (run.sh's 125).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-shared}
export PATH=$PATH:$HOME/.cargo/bin

PLAN=(
  "lib cgroup::"
  "runtime_pod stats_come_from_cgroups_and_the_writable_layer update_container_resources_changes_the_cgroup a_memory_hog_is_oom_killed_and_reported shims_leave_berthds_cgroup"
  "isolation a_hostile_container_stays_inside"
  "metrics pod_metrics_come_from_the_running_pod"
  "cri_foundation runtime_config_reports_the_cgroup_driver the_systemd_driver_needs_systemd_on_cgroup_v2"
  "runtime_handlers oom_killed runc_handler_runs_the_pod_lifecycle crun_is_refused_clearly_or_works"
)
DRIVERS=(cgroupfs systemd)
# crictl scripts that touch cgroups (paths from the repository root).
E2E=(
  e2e/crictl-pods.sh
  e2e/crictl-pods-runc.sh
  e2e/vm/crictl-cgroups.sh
)

if [[ ${1:-} == --guest ]]; then
  # In the guest: $2 is the file of `<binary> <filter>...` lines, the library's first.
  failed=()
  started=$SECONDS
  run_plan() { # run_plan DRIVER: the plan's lines (the library's with the first driver only)
    local bin filters
    while read -r bin filters; do
      [[ $(basename "$bin") == berth-* && $1 != "${DRIVERS[0]}" ]] && continue
      echo "=== vm suite [$1]: $(basename "$bin") $filters"
      # shellcheck disable=SC2086
      if ! BERTH_TEST_CGROUP_DRIVER=$1 "$bin" --test-threads=1 $filters; then
        failed+=("$(basename "$bin")[$1]")
      fi
    done < "$2"
  }
  run_e2e() { # run_e2e DRIVER
    local script
    for script in "${E2E[@]}"; do
      echo "=== vm suite [$1]: $script"
      if ! BERTH_E2E_CGROUP_DRIVER=$1 BERTHD=$CARGO_TARGET_DIR/debug/berthd bash "$script"; then
        failed+=("$script[$1]")
      fi
    done
  }
  for driver in "${DRIVERS[@]}"; do
    t=$SECONDS
    run_plan "$driver" "$2"
    run_e2e "$driver"
    left=$(systemctl list-units --all --plain --no-legend 'berth*' 2>/dev/null | awk '{print $1}')
    if [[ -n $left ]]; then
      echo "=== vm suite [$driver]: units left behind: $left"
      failed+=("units-left[$driver]")
    fi
    echo "=== vm suite [$driver]: $((SECONDS - t)) s"
  done
  echo "=== vm suite: cgroup $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm), $((SECONDS - started)) s"
  if ((${#failed[@]})); then
    echo "=== vm suite: FAILED in ${failed[*]}"
    exit 1
  fi
  echo "=== vm suite: all passed"
  exit 0
fi

cd "$ROOT"
targets=()
for line in "${PLAN[@]}"; do
  t=${line%% *}
  if [[ $t == lib ]]; then targets+=(--lib); else targets+=(--test "$t"); fi
done
json=$(mktemp)
trap 'rm -f "$json" "${plan:-}"' EXIT
if [[ ${1:-} == --no-build ]]; then
  cargo test --no-run --offline --frozen --quiet "${targets[@]}" --message-format=json >"$json"
else
  cargo build --bins
  cargo test --no-run "${targets[@]}" --message-format=json >"$json"
fi
plan=$(mktemp /var/tmp/berth-vm-plan.XXXXXX)
for line in "${PLAN[@]}"; do
  t=${line%% *}
  filters=${line#* }
  kind=test; [[ $t == lib ]] && { kind=lib; t=berth; }
  exe=$(jq -r --arg t "$t" --arg k "$kind" \
    'select(.reason=="compiler-artifact" and .target.name==$t and (.target.kind|index($k)) and .profile.test and .executable!=null) | .executable' \
    "$json" | tail -n1)
  [[ -n $exe && -x $exe ]] || { echo "vm/suite.sh: no test binary for $t" >&2; exit 1; }
  echo "$exe $filters" >>"$plan"
done

hack/registry.sh start >/dev/null
eval "$(hack/registry.sh env)"
exec "$ROOT/e2e/vm/run.sh" "$ROOT/e2e/vm/suite.sh" --guest "$plan"
