#!/usr/bin/env bash
# Pull benchmark (not a test: hack/test-all.sh runs e2e/*.sh only). In one run, on this machine:
#   (a) berth: cold `crictl pull` of the Debian test image against a release berthd, N times
#   (b) containerd: the same with Debian's containerd on its own config, root, state and socket
#   (c) the machine's limit: curl | gunzip | tar -x of the image's largest layer alone
#   (d) the ratios containerd/berth (target >= 3) and berth/limit (target <= 1.5)
#   (e) berthd's peak RSS (VmHWM) while pulling test/big:1g, one ~1 GiB gzip layer
#   (f) berthd's PSS (smaps_rollup) after its pulls end: after the Debian rounds, and after the
#       1 GiB pull; target <= 16 MiB within 30 s
# docs/benchmarks.md explains each number and keeps the measured results.
#
#   e2e/bench/pull.sh [-n RUNS] [--no-big]
#
# Environment: BERTHD (default target/release/berthd; build it with `cargo build --release --bins`),
# BENCH_OUT (where results go, default /tmp/berth-bench), BENCH_RUNS (default 5),
# BENCH_IMAGE (default library/debian:bookworm, on the plain test registry),
# BENCH_FS: `loop` (default) puts both daemons' roots and the limit's output on a fresh ext4 with a
# journal, on a loop device (direct I/O) backed by a sparse file of BENCH_FS_SIZE (default 8G);
# `host` uses the filesystem of $TMPDIR as it is (see docs/benchmarks.md for why loop is default).
# Needs root and what hack/install-deps.sh installs; starts the test registries if they are down.
# Everything it starts is stopped, and its temp dir unmounted and removed, on exit.
set -euo pipefail
shopt -s inherit_errexit

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BERTHD=${BERTHD:-$ROOT/target/release/berthd}
# shellcheck source=e2e/bench/lib.sh
source "$BENCH/lib.sh" # die, log, now_ms, stop_pid, mounts_under, wait_socket, median, ratio, ...
OUT=${BENCH_OUT:-/tmp/berth-bench}
RUNS=${BENCH_RUNS:-5}
FS_MODE=${BENCH_FS:-loop}
FS_SIZE=${BENCH_FS_SIZE:-8G}
IMAGE_PATH=${BENCH_IMAGE:-library/debian:bookworm}
BIG_PATH=test/big:1g
BIG=1
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

while (($#)); do
  case $1 in
    -n) RUNS=$2; shift 2 ;;
    --no-big) BIG=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "pull.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done


[[ $EUID -eq 0 ]] || die "needs root (overlay snapshots, two runtimes)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive number, got $RUNS"
[[ -x $BERTHD ]] || die "no berthd at $BERTHD: cargo build --release --bins"
[[ $FS_MODE == loop || $FS_MODE == host ]] || die "BENCH_FS is loop or host, not $FS_MODE"
for tool in crictl containerd ctr curl jq gunzip tar python3 findmnt losetup mkfs.ext4; do
  command -v "$tool" >/dev/null || die "$tool is missing: run hack/install-deps.sh"
done

# ---------------------------------------------------------------------------------------------------
# Cleanup: whatever was started and mounted, even after a failure or ^C.

WORK=""
LOOP=""
BERTHD_PID=""
CTD_PID=""
SAMPLER_PID=""
RUN=""



cleanup() {
  local rc=$? m
  set +e
  trap - EXIT INT TERM
  stop_pid "$SAMPLER_PID" "memory sampler"
  stop_pid "$BERTHD_PID" berthd
  stop_pid "$CTD_PID" containerd
  if [[ -n $WORK && -d $WORK ]]; then
    for m in $(mounts_under "$WORK"); do umount "$m" 2>/dev/null || umount -l "$m"; done
    [[ -n $LOOP ]] && losetup -d "$LOOP"
    if [[ -n $(mounts_under "$WORK") ]]; then
      echo "pull.sh: mounts left under $WORK, not removing it:" >&2
      mounts_under "$WORK" >&2
      rc=1
    else
      rm -rf "$WORK"
    fi
  fi
  if [[ -n $RUN ]]; then unmount_under "$RUN" && rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------
# Registry and images

"$ROOT/hack/registry.sh" start >/dev/null
eval "$("$ROOT/hack/registry.sh" env)"
REG=$BERTH_TEST_REGISTRY
IMAGE=$REG/$IMAGE_PATH
BIG_IMAGE=$REG/$BIG_PATH

manifest() { # manifest REPO:TAG -> the manifest JSON (amd64 manifest, not an index)
  curl -sf -H "Accept: $ACCEPT" "http://$REG/v2/${1%:*}/manifests/${1##*:}"
}

manifest "$IMAGE_PATH" >/dev/null || {
  [[ $IMAGE_PATH == library/debian:bookworm ]] || die "$IMAGE is not in the registry"
  log "building the Debian test image"
  "$ROOT/hack/testimages/build.sh" debian >&2
}

mkdir -p "$OUT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")

# $FS: where everything measured writes. On this project's VMs the root filesystem is ext4 without
# a journal, whose inode allocator skips every inode freed in the last 60 s (to 360 s) one by one
# (ext4 recently_deleted()): after a few deleted image trees each file creation scans thousands of
# them, and that, not any runtime, dominates. A fresh journaled ext4 is what a node has.
if [[ $FS_MODE == loop ]]; then
  truncate -s "$FS_SIZE" "$WORK/fs.img"
  LOOP=$(losetup --find --show --direct-io=on "$WORK/fs.img")
  mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP"
  mkdir "$WORK/fs"
  mount "$LOOP" "$WORK/fs"
  FS=$WORK/fs
  FS_DESC="a fresh ext4 (journal, $(findmnt -no OPTIONS "$FS")) on $LOOP (direct I/O), backed by a $FS_SIZE sparse file on $(findmnt -no FSTYPE -T "$WORK") ($(findmnt -no SOURCE -T "$WORK"))"
else
  FS=$WORK
  FS_DESC="$(findmnt -no FSTYPE -T "$WORK") ($(findmnt -no SOURCE -T "$WORK"), $(findmnt -no OPTIONS -T "$WORK")) at $WORK"
fi

# test/big:1g: built once, then kept in the registry (about 1 GiB of registry storage).
ensure_big() {
  manifest "$BIG_PATH" >/dev/null && return 0
  log "building $BIG_PATH: 1 GiB of random bytes, gzip (about a minute, once)"
  mkdir -p "$WORK/big-src"
  head -c $((1 << 30)) /dev/urandom >"$WORK/big-src/random.bin"
  BENCH_BIG_SRC=$WORK/big-src python3 "$ROOT/hack/testimages/mkimage.py" \
    "$BENCH/big-1g.json" "$WORK/big-layout" --tag 1g >/dev/null
  rm -rf "$WORK/big-src"
  python3 "$ROOT/hack/testimages/push.py" --registry "http://$REG" "$WORK/big-layout" "${BIG_PATH%:*}" >&2
  rm -rf "$WORK/big-layout"
}

# ---------------------------------------------------------------------------------------------------
# The two daemons, side by side, each on its own dirs and socket under $FS.

B=$FS/berth
C=$FS/containerd
# State dirs (sockets, and berth's pod sockets beneath) stay short, on a tmpfs as on a node.
RUN=$(mktemp -d /run/bpl.XXXXXX)
berthd_config "$B" "$REG" "$RUN/b"
containerd_config "$C" "$REG" "" "$RUN/c"
SOCK_B=$(berthd_socket "$B")
SOCK_C=$(containerd_socket "$C")

for who in berth containerd; do
  sock=$SOCK_B
  [[ $who == containerd ]] && sock=$SOCK_C
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 600\n' "$sock" "$sock" \
    >"$WORK/crictl-$who.yaml"
done
crictl_b() { crictl --config "$WORK/crictl-berth.yaml" "$@"; }
crictl_c() { crictl --config "$WORK/crictl-containerd.yaml" "$@"; }
ctr_c() { ctr --address "$SOCK_C" --namespace k8s.io "$@"; }

containerd_start "$C"
berthd_start "$B"
crictl_c version >/dev/null || die "containerd's CRI does not answer; see $C/containerd.log"
crictl_b version >/dev/null || die "berthd does not answer; see $B/berthd.log"

# ---------------------------------------------------------------------------------------------------
# Cold-pull rounds

# Fails unless $1 (a directory) is missing or empty.
assert_empty() { [[ -z $(ls -A "$1" 2>/dev/null) ]] || die "not cold: $1 holds $(ls -A "$1" | head -n 5 | tr '\n' ' ')"; }

berth_cold() {
  crictl_b rmi "$IMAGE" >/dev/null 2>&1 || true
  [[ -z $(crictl_b images -q) ]] || die "berth still lists images after rmi"
  assert_empty "$B/root/snapshots"
  assert_empty "$B/root/content/blobs/sha256"
  assert_empty "$B/root/content/ingest"
}

containerd_cold() {
  crictl_c rmi "$IMAGE" >/dev/null 2>&1 || true
  local img
  for img in $(ctr_c images ls -q); do ctr_c images rm --sync "$img" >/dev/null; done
  ctr_c content prune references >/dev/null
  # The CRI plugin removes synchronously; the metadata GC may still be sweeping: give it a moment.
  for _ in $(seq 100); do
    [[ -z $(ctr_c content ls -q) && -z $(ctr_c snapshots ls | tail -n +2) ]] && break
    sleep 0.1
  done
  [[ -z $(ctr_c images ls -q) ]] || die "containerd still has images: $(ctr_c images ls -q)"
  [[ -z $(ctr_c content ls -q) ]] || die "containerd still has content: $(ctr_c content ls -q)"
  [[ -z $(ctr_c snapshots ls | tail -n +2) ]] || die "containerd still has snapshots: $(ctr_c snapshots ls)"
  assert_empty "$C/root/io.containerd.snapshotter.v1.overlayfs/snapshots"
  assert_empty "$C/root/io.containerd.content.v1.content/blobs/sha256"
}

# CPU time in ms used so far by process $1 and its reaped children (containerd's unpigz).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15 + $16 + $17) * 1000 / hz)}' "/proc/$1/stat"; }

# timed_pull berth|containerd: one cold pull; prints its wall time and the daemon's CPU time, in ms.
timed_pull() {
  local t0 t1 c0 c1 pid=$BERTHD_PID
  [[ $1 == containerd ]] && pid=$CTD_PID
  sync # dirty pages of the previous round are not this pull's to write back
  c0=$(cpu_ms "$pid")
  t0=$(now_ms)
  if [[ $1 == berth ]]; then crictl_b pull "$IMAGE" >/dev/null; else crictl_c pull "$IMAGE" >/dev/null; fi
  t1=$(now_ms)
  c1=$(cpu_ms "$pid")
  echo "$((t1 - t0)) $((c1 - c0))"
}

# berthd's own account of its last pull (its "pulled" log line).
berth_logged_ms() {
  jq -r 'select(.message? == "pulled") | .elapsed_ms' "$B/berthd.log" 2>/dev/null | tail -n 1
}

MANIFEST=$(manifest "$IMAGE_PATH")
LAYERS=$(jq -r '.layers[] | "\(.size) \(.digest)"' <<<"$MANIFEST" | sort -n)
read -r LARGEST_SIZE LARGEST < <(tail -n 1 <<<"$LAYERS")
IMAGE_BYTES=$(jq '[.layers[].size] | add' <<<"$MANIFEST")
blob_url() { echo "http://$REG/v2/${IMAGE_PATH%:*}/blobs/$1"; }

# The machine's limit: fetch, gunzip and untar the largest layer, nothing else.
limit_once() {
  local dir=$FS/limit t0 t1
  rm -rf "$dir"; mkdir -p "$dir"; sync
  t0=$(now_ms)
  curl -sf "$(blob_url "$LARGEST")" | gunzip | tar -x -C "$dir"
  t1=$(now_ms)
  rm -rf "$dir"
  echo $((t1 - t0))
}

# For context: every layer at once (as a runtime pulls them), same pipeline.
limit_all_once() {
  local t0 t1 size digest i=0 pids=() pid
  rm -rf "$FS/limit-all"; sync
  t0=$(now_ms)
  while read -r size digest; do
    mkdir -p "$FS/limit-all/$i"
    (curl -sf "$(blob_url "$digest")" | gunzip | tar -x -C "$FS/limit-all/$i") &
    pids+=($!)
    i=$((i + 1))
  done <<<"$LAYERS"
  for pid in "${pids[@]}"; do wait "$pid"; done
  t1=$(now_ms)
  rm -rf "$FS/limit-all"
  echo $((t1 - t0))
}


BERTH=() BERTH_LOGGED=() BERTH_CPU=() CTD=() CTD_CPU=() LIMIT=() LIMIT_ALL=()
log "warm-up: one pull each (not counted), so the registry's files are in the page cache"
berth_cold; crictl_b pull "$IMAGE" >/dev/null
containerd_cold; crictl_c pull "$IMAGE" >/dev/null
for i in $(seq "$RUNS"); do
  berth_cold
  t=$(timed_pull berth); BERTH+=("${t% *}"); BERTH_CPU+=("${t#* }")
  t=$(berth_logged_ms); BERTH_LOGGED+=("$t")
  containerd_cold
  t=$(timed_pull containerd); CTD+=("${t% *}"); CTD_CPU+=("${t#* }")
  t=$(limit_once); LIMIT+=("$t")
  t=$(limit_all_once); LIMIT_ALL+=("$t")
  log "round $i/$RUNS: berth ${BERTH[-1]} ms (berthd says ${BERTH_LOGGED[-1]}, CPU ${BERTH_CPU[-1]}), containerd ${CTD[-1]} ms, limit ${LIMIT[-1]} ms (all layers ${LIMIT_ALL[-1]} ms)"
done
berth_cold
containerd_cold

# berthd's proportional set size, KiB: what it costs the node, shared pages split among sharers.
pss_kib() { awk '$1 == "Pss:" {print $2}' "/proc/$BERTHD_PID/smaps_rollup"; }
# Polls PSS each second for up to 30 s after the last pull ended; prints "<KiB> <seconds>" for the
# first sample at or under 16 MiB, else the sample at 30 s.
pss_settled() {
  local s kib
  for s in $(seq 0 30); do
    kib=$(pss_kib)
    if ((kib <= 16384)) || ((s == 30)); then echo "$kib $s"; return; fi
    sleep 1
  done
}
pss_line() { # <what> <"KiB seconds">
  awk -v what="$1" -v k="${2% *}" -v s="${2#* }" 'BEGIN {
    printf "%s: PSS %.1f MiB %d s after the pull ended (target <= 16 MiB within 30 s: %s)", what, k / 1024, s, (k <= 16384) ? "met" : "MISSED"
  }'
}
PSS_DEBIAN=$(pss_line "(f) berthd after $((RUNS + 1)) pulls and removals of $IMAGE" "$(pss_settled)")
log "$PSS_DEBIAN"

# ---------------------------------------------------------------------------------------------------
# Peak memory of berthd during a 1 GiB pull: a fresh berthd, so nothing earlier counts.

BIG_LINE="(e) skipped (--no-big)"
if ((BIG)); then
  ensure_big
  stop_pid "$BERTHD_PID" berthd
  BERTHD_PID=""
  berthd_start "$B"
  BIG_SIZE=$(manifest "$BIG_PATH" | jq '[.layers[].size] | add')
  status_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$BERTHD_PID/status"; }
  IDLE_KIB=$(status_kib VmRSS)
  echo 5 >"/proc/$BERTHD_PID/clear_refs" # VmHWM := VmRSS, so the peak is this pull's
  (
    while kill -0 "$BERTHD_PID" 2>/dev/null; do
      awk '$1 == "VmRSS:" {print $2}' "/proc/$BERTHD_PID/status" 2>/dev/null || true
      sleep 0.05
    done
  ) >"$WORK/rss.samples" &
  SAMPLER_PID=$!
  sync
  t0=$(now_ms)
  crictl_b pull "$BIG_IMAGE" >/dev/null
  t1=$(now_ms)
  HWM_KIB=$(status_kib VmHWM)
  stop_pid "$SAMPLER_PID" "memory sampler"
  SAMPLER_PID=""
  SAMPLED_KIB=$(sort -n "$WORK/rss.samples" | tail -n 1)
  BIG_MS=$((t1 - t0))
  crictl_b rmi "$BIG_IMAGE" >/dev/null
  PSS_BIG=$(pss_line "    berthd after the 1 GiB pull and its removal" "$(pss_settled)")
  assert_empty "$B/root/snapshots"
  assert_empty "$B/root/content/blobs/sha256"
  BIG_LINE=$(awk -v h="$HWM_KIB" -v s="$SAMPLED_KIB" -v i="$IDLE_KIB" -v ms="$BIG_MS" -v b="$BIG_SIZE" 'BEGIN {
    printf "(e) berthd peak RSS pulling %s (%.0f MiB compressed): VmHWM %.1f MiB (target < 64: %s), highest 50 ms sample %.1f MiB, idle before %.1f MiB; pull took %d ms (%.0f MiB/s)",
      "'"$BIG_PATH"'", b / 1048576, h / 1024, (h / 1024 < 64) ? "met" : "MISSED", s / 1024, i / 1024, ms, b / 1048576 / (ms / 1000)
  }')
fi

# ---------------------------------------------------------------------------------------------------
# Report

BM=$(median "${BERTH[@]}") CM=$(median "${CTD[@]}") LM=$(median "${LIMIT[@]}") AM=$(median "${LIMIT_ALL[@]}")
BMIN=$(minimum "${BERTH[@]}") CMIN=$(minimum "${CTD[@]}") LMIN=$(minimum "${LIMIT[@]}")
CB=$(ratio "$CM" "$BM")
BL=$(ratio "$BM" "$LM")
verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN {print ((op == ">=" && r >= t) || (op == "<=" && r <= t)) ? "met" : "MISSED"}'; }
# Which berthd was measured: the checkout's commit if it is this checkout's build.
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT=$OUT/pull-$STAMP.txt
{
  echo "berth pull benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "filesystem: $FS_DESC"
  echo "load average: at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
  echo "berthd: $(berthd_build "$ROOT")"
  echo "containerd: $(containerd --version | awk '{print $3}'), overlayfs snapshotter, max_concurrent_downloads 3 (both)"
  echo "image: $IMAGE, $(jq '.layers | length' <<<"$MANIFEST") layers, $IMAGE_BYTES bytes compressed; largest layer $LARGEST ($LARGEST_SIZE bytes)"
  echo "runs: $RUNS cold pulls each, after one warm-up pull each"
  echo
  echo "raw wall times, ms (in run order):"
  echo "  berth crictl pull       ${BERTH[*]}"
  echo "  berthd 'pulled' log     ${BERTH_LOGGED[*]}"
  echo "  berthd CPU time         ${BERTH_CPU[*]}"
  echo "  containerd crictl pull  ${CTD[*]}"
  echo "  containerd CPU time     ${CTD_CPU[*]}   (with its unpigz children)"
  echo "  limit, largest layer    ${LIMIT[*]}"
  echo "  limit, all layers       ${LIMIT_ALL[*]}"
  echo
  echo "(a) berth cold pull:       median $BM ms, min $BMIN ms; CPU median $(median "${BERTH_CPU[@]}") ms"
  echo "(b) containerd cold pull:  median $CM ms, min $CMIN ms; CPU median $(median "${CTD_CPU[@]}") ms"
  echo "(c) limit (largest layer): median $LM ms, min $LMIN ms; all layers at once: median $AM ms"
  echo "(d) containerd/berth = $CB (target >= 3: $(verdict "$CB" 3 '>='))"
  echo "    berth/limit      = $BL (target <= 1.5: $(verdict "$BL" 1.5 '<='))"
  echo "    the same from the minima (least disturbed by other load): containerd/berth $(ratio "$CMIN" "$BMIN"), berth/limit $(ratio "$BMIN" "$LMIN")"
  echo "    berth/limit(all layers at once) = $(ratio "$BM" "$AM") (medians)"
  echo "$BIG_LINE"
  echo "$PSS_DEBIAN"
  [[ -z ${PSS_BIG:-} ]] || echo "$PSS_BIG"
} | tee "$RESULT"
echo "results: $RESULT" >&2
