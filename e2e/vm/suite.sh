#!/usr/bin/env bash
# berth's cgroup-touching tests on pure cgroup v2: built here, run in an e2e/vm/run.sh guest.
#
#   e2e/vm/suite.sh            build the test binaries, boot the guest, run the plan below
#   e2e/vm/suite.sh --no-build run the binaries the last `cargo test --no-run` left (CI builds first)
#
# The plan is a list of `<cargo test target> <filter>...` lines: the library's cgroup module (its
# host tests then run on a v2 host, in Mode::V2, and the systemd driver's against the guest's
# systemd) and the integration tests whose subject is a cgroup (limits, updates, stats, OOM,
# placement of shims, device isolation, the cgroup driver, runc and crun). E2E lists crictl
# scripts, critest (e2e/vm/critest.sh) and kubelet. Each line runs once per cgroup driver in DRIVERS (the test harness reads
# BERTH_TEST_CGROUP_DRIVER, e2e/lib.sh BERTH_E2E_CGROUP_DRIVER), or, when it starts with
# `<driver>:`, with that driver only (what does not depend on the driver runs once).
# The test registries run on the host; the guest reaches them at the same addresses. Exits
# non-zero when a test fails or the guest does not boot (run.sh's 125).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PATH=$PATH:$HOME/.cargo/bin

PLAN=(
  "cgroupfs: lib cgroup::"
  "runtime_pod stats_come_from_cgroups_and_the_writable_layer update_container_resources_changes_the_cgroup shims_leave_berthds_cgroup"
  "runtime_pod a_memory_hog_is_oom_killed_and_reported"
  "isolation a_hostile_container_stays_inside"
  "cgroupfs: metrics pod_metrics_come_from_the_running_pod"
  "cgroupfs: cri_foundation runtime_config_reports_the_cgroup_driver the_systemd_driver_needs_systemd_on_cgroup_v2"
  "runtime_handlers runc_handler_runs_the_pod_lifecycle crun_is_refused_clearly_or_works"
  "runtime_handlers oom_killed"
  "cgroupfs: pressure stats_carry_pressure_exactly_where_the_kernel_has_it"
  "cgroupfs: pod_resize a_pod_resize_reaches_the_pod_cgroup_and_survives_a_restart"
)
DRIVERS=(cgroupfs systemd)
# crictl scripts (paths from the repository root). e2e/crictl-pods.sh and crictl-pods-runc.sh
# pass here with the cgroupfs driver but add 2 min each per driver for little cgroup coverage
# beyond crictl-cgroups.sh: they run on the host only.
# e2e/vm/critest.sh: critest's cgroup-touching specs, a different set per driver (which, and what
# is left out for time: e2e/critest/EXPECTED_SKIPS.md, "The cgroup v2 guest").
# e2e/kubelet.sh: kubelet v1.37 with its defaults on v2 (no failCgroupV1) and the same driver as
# berthd, static pods checked through its API, with every wait 6x longer; only its checks whose
# subject is the cgroup driver, cgroups or what kubelet reads from them (driver, pods_run,
# init_order, oomkilled, limits, stats, podcidr, kill9, removal): the others (env_bytes: a Go
# build, minutes in the guest; probes, crashloop, hostnet, sharedpid, emptydir, netstats) would
# add minutes of guest time for nothing cgroup v2 changes, and run on the host.
E2E=(
  e2e/vm/crictl-cgroups.sh
  e2e/vm/critest.sh
  "systemd: e2e/kubelet.sh"
)

# for_driver DRIVER LINE: LINE without its `<driver>:` prefix if it runs with DRIVER, else fails.
for_driver() {
  if [[ $2 =~ ^([a-z]+):\ (.*)$ ]]; then
    [[ ${BASH_REMATCH[1]} == "$1" ]] || return 1
    echo "${BASH_REMATCH[2]}"
  else
    echo "$2"
  fi
}

if [[ ${1:-} == --guest ]]; then
  # In the guest: $2 is the file of `<binary> <filter>...` lines, the library's first.
  failed=()
  started=$SECONDS
  run_plan() { # run_plan DRIVER PLANFILE: the plan's lines for DRIVER
    local line bin filters
    while read -r line; do
      line=$(for_driver "$1" "$line") || continue
      read -r bin filters <<<"$line"
      echo "=== vm suite [$1]: $(basename "$bin") $filters"
      # shellcheck disable=SC2086
      if ! BERTH_TEST_CGROUP_DRIVER=$1 "$bin" --test-threads=1 $filters; then
        failed+=("$(basename "$bin")[$1]")
      fi
    done < "$2"
  }
  run_e2e() { # run_e2e DRIVER
    local line script
    for line in "${E2E[@]}"; do
      script=$(for_driver "$1" "$line") || continue
      echo "=== vm suite [$1]: $script"
      local t0=$SECONDS skip="env_bytes probes crashloop hostnet sharedpid emptydir netstats"
      if ! BERTH_E2E_CGROUP_DRIVER=$1 BERTH_E2E_CRICTL_TIMEOUT=120s BERTH_E2E_TIME_SCALE=6 \
        BERTH_E2E_KUBELET_SKIP=$skip BERTHD=$CARGO_TARGET_DIR/debug/berthd bash "$script"; then
        failed+=("$script[$1]")
      fi
      echo "=== vm suite [$1]: $script: $((SECONDS - t0)) s"
    done
  }
  for driver in "${DRIVERS[@]}"; do
    t=$SECONDS
    run_plan "$driver" "$2"
    run_e2e "$driver"
    left=$(systemctl list-units --all --plain --no-legend --type=scope,slice 'berth*' 2>/dev/null |
      awk '{print $1}')
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
  line=${line#*: }
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
  prefix=
  [[ $line =~ ^[a-z]+:\  ]] && { prefix=${line%%: *}": "; line=${line#*: }; }
  t=${line%% *}
  filters=${line#* }
  kind=test; [[ $t == lib ]] && { kind=lib; t=berth; }
  exe=$(jq -r --arg t "$t" --arg k "$kind" \
    'select(.reason=="compiler-artifact" and .target.name==$t and (.target.kind|index($k)) and .profile.test and .executable!=null) | .executable' \
    "$json" | tail -n1)
  [[ -n $exe && -x $exe ]] || { echo "vm/suite.sh: no test binary for $t" >&2; exit 1; }
  echo "$prefix$exe $filters" >>"$plan"
done

hack/registry.sh start >/dev/null
eval "$(hack/registry.sh env)"
# The images critest pulls (cached: a second when built); critest itself is hack/install-deps.sh's.
hack/testimages/build.sh critest >/dev/null
# kubelet for e2e/kubelet.sh, built (or found cached) here: the guest only runs it.
BERTH_KUBELET_DIR=$(hack/k8s/build.sh kubelet)
export BERTH_KUBELET_DIR
exec "$ROOT/e2e/vm/run.sh" "$ROOT/e2e/vm/suite.sh" --guest "$plan"
