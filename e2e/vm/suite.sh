#!/usr/bin/env bash
# berth's cgroup-touching tests on pure cgroup v2: built here, run in an e2e/vm/run.sh guest.
#
#   e2e/vm/suite.sh            build the test binaries, boot the guest, run the plan below
#   e2e/vm/suite.sh --no-build run the binaries the last `cargo test --no-run` left (CI builds first)
#
# The plan is a list of `<cargo test target> <filter>...` lines: the library's cgroup module (its
# host tests then run on a v2 host, in Mode::V2) and the integration tests whose subject is a
# cgroup (limits, updates, stats, OOM, placement of shims, device isolation, the cgroup driver).
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
  "cri_foundation runtime_config_reports_the_cgroup_driver"
  "runtime_handlers oom_killed runc_handler_runs_the_pod_lifecycle"
  "pressure stats_carry_pressure_exactly_where_the_kernel_has_it"
  "pod_resize a_pod_resize_reaches_the_pod_cgroup_and_survives_a_restart"
)
# Not yet: crun_is_refused_clearly_or_works. On v2 Debian's crun 1.8.1 passes the startup probe
# (ociVersion 1.0.2) but refuses every container spec berth writes (ociVersion 1.2.0: "unknown
# version specified"; it takes 1.0.x and 1.1.x).

if [[ ${1:-} == --guest ]]; then
  # In the guest: $2 is the file of `<binary> <filter>...` lines.
  failed=()
  while read -r bin filters; do
    echo "=== vm suite: $(basename "$bin") $filters"
    # shellcheck disable=SC2086
    if ! "$bin" --test-threads=1 $filters; then failed+=("$(basename "$bin")"); fi
  done < "$2"
  echo "=== vm suite: cgroup $(stat -fc %T /sys/fs/cgroup), PID 1 $(cat /proc/1/comm)"
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
