#!/usr/bin/env bash
# critest's cgroup-touching groups on pure cgroup v2, in the e2e/vm guest, for one cgroup driver
# (BERTH_E2E_CGROUP_DRIVER, cgroupfs by default; e2e/vm/suite.sh runs it for both). The host
# installed critest, built berthd and pushed critest's images (e2e/critest/run.sh's steps 1 and 2);
# this runs e2e/critest/run.sh's steps 3 and 4, so its check against e2e/critest/EXPECTED_SKIPS.md
# applies here too. Which groups run with which driver, and what is left out and why:
# EXPECTED_SKIPS.md, "The cgroup v2 guest". CRITEST_FOCUS replaces the driver's focus (to measure).
# Prints the time each group took. Exit status: e2e/critest/run.sh's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DRIVER=${BERTH_E2E_CGROUP_DRIVER:-cgroupfs}
die() { echo "vm/critest.sh: $*" >&2; exit 1; }
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || die "needs pure cgroup v2: run it through e2e/vm/suite.sh"
[[ -n ${BERTHD:-} ]] || die "BERTHD must name the host-built berthd"
command -v critest >/dev/null || die "no critest: hack/install-deps.sh installs it"

# The groups, as ginkgo focus regexes on the spec's full name (spec counts in parentheses). Both
# drivers run the specs of the issue's four groups that limit and read a cgroup: stats, OOM,
# metrics, devices (the rest of those groups runs on the v1 host; the guest's times, and what a
# larger set would cost: EXPECTED_SKIPS.md).
STATS='\] Container runtime should support basic operations on container runtime should support listing'  # (5 of them)
OOM='\] Container OOM'                                     # memory limit, OOMKilled, 137 (1)
METRICS='\] PodSandbox runtime should support metrics operations'  # CRI metrics (2)
PRIVILEGED='\] Security Context bucket runtime should support Privileged is'  # devices (2 of them)
case $DRIVER in
  systemd | cgroupfs) FOCUS="$STATS|$OOM|$METRICS|$PRIVILEGED" ;;
  *) die "unknown cgroup driver $DRIVER" ;;
esac
FOCUS=${CRITEST_FOCUS:-$FOCUS}
OUT=${CRITEST_OUT:-/tmp/berth-critest-$DRIVER}

set +e
CRITEST_PREPARED=1 CRITEST_CONTEXT=vm CRITEST_OUT=$OUT "$ROOT/e2e/critest/run.sh" -ginkgo.focus="$FOCUS"
status=$?
set -e
# Seconds per group (Describe and Context) among the specs that ran.
if [[ -s $OUT/report.json ]]; then
  jq -r '[.[].SpecReports[]? | select(.LeafNodeType == "It" and (.NumAttempts // 0) > 0)
      | {g: (.ContainerHierarchyTexts[0:2] | join(" ")), t: (.RunTime / 1e9)}]
    | group_by(.g)[] | "critest [\(.[0].g)]: \(length) specs, \(map(.t) | add | floor) s"' \
    "$OUT/report.json" || true
fi
exit "$status"
