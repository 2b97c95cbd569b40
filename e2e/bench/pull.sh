#!/usr/bin/env bash
# Pull benchmark (not a test: hack/test-all.sh runs e2e/*.sh only). In one run, on this machine:
#   (a) berth: cold PullImage of each benchmark image against a release berthd, N rounds, timed
#       by examples/bench_client.rs (one gRPC connection, the call's own time: no crictl start-up)
#   (b) containerd: the same with Debian's containerd on its own config, root, state and socket;
#       the two alternate image by image within each round (interleaved), the order flipping
#       every round, so load from the rest of the machine falls on both alike
#   (c) the machine's limit: curl | gunzip | tar -x of the Debian image's largest layer alone
#   (d) per image, the ratio containerd/berth of the medians (target >= 3) and of each round's pair,
#       and berth/limit for the Debian image (target <= 1.5)
#   (e) berthd's peak RSS (VmHWM) while pulling test/big:1g, one ~1 GiB gzip layer
#   (f) berthd's PSS (smaps_rollup) sampled every second for 30 s after its pulls end: after the
#       rounds, and after the 1 GiB pull; target <= 16 MiB within 30 s
# Images (BENCH_IMAGES): library/busybox:latest (1 MB, 1 gzip layer, Docker media types),
# library/debian:bookworm (48.5 MB, 3 gzip layers), library/debian:bookworm-zstd (the same, zstd).
# docs/benchmarks.md explains each number and keeps the measured results.
#
#   e2e/bench/pull.sh [-n RUNS] [--no-big]
#
# Environment: BERTHD (default target/release/berthd), BENCH_CLIENT (default
# target/release/examples/bench_client; build both with
# `cargo build --release --bins --example bench_client`),
# BENCH_OUT (where results go, default /tmp/berth-bench), BENCH_RUNS (default 5),
# BENCH_IMAGES (space-separated repo:tag on the plain test registry, default the three above),
# BENCH_FS: `both` (default) runs everything twice, first with `loop`, then with `host`, and prints
# both reports; `loop` puts both daemons' roots and the limit's output on a fresh ext4 with a
# journal, on a loop device (direct I/O) backed by a sparse file of BENCH_FS_SIZE (default 8G);
# `host` uses the filesystem of $TMPDIR as it is (see docs/benchmarks.md for the difference).
# Needs root and what hack/install-deps.sh installs; starts the test registries if they are down.
# Everything it starts is stopped, and its temp dir unmounted and removed, on exit.
set -euo pipefail
shopt -s inherit_errexit

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
BERTHD=${BERTHD:-$ROOT/target/release/berthd}
CLIENT=${BENCH_CLIENT:-$ROOT/target/release/examples/bench_client}
# shellcheck source=e2e/bench/lib.sh
source "$BENCH/lib.sh" # die, log, now_ms, stop_pid, mounts_under, wait_socket, median, ratio, ...
OUT=${BENCH_OUT:-/tmp/berth-bench}
RUNS=${BENCH_RUNS:-5}
FS_MODE=${BENCH_FS:-both}
FS_SIZE=${BENCH_FS_SIZE:-8G}
read -r -a IMAGE_PATHS <<<"${BENCH_IMAGES:-library/busybox:latest library/debian:bookworm library/debian:bookworm-zstd}"
LIMIT_PATH=library/debian:bookworm
BIG_PATH=test/big:1g
BIG=1
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
ARGS=("$@")

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
[[ -x $CLIENT ]] || die "no bench client at $CLIENT: cargo build --release --example bench_client"
[[ $FS_MODE == loop || $FS_MODE == host || $FS_MODE == both ]] || die "BENCH_FS is loop, host or both, not $FS_MODE"

if [[ $FS_MODE == both ]]; then
  # One run per filesystem, one after the other; each prints its own report.
  BENCH_FS=loop "$0" "${ARGS[@]}"
  BENCH_FS=host "$0" "${ARGS[@]}"
  exit 0
fi

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
BIG_IMAGE=$REG/$BIG_PATH

manifest() { # manifest REPO:TAG -> the manifest JSON (amd64 manifest, not an index)
  curl -sf -H "Accept: $ACCEPT" "http://$REG/v2/${1%:*}/manifests/${1##*:}"
}

for path in "${IMAGE_PATHS[@]}" "$LIMIT_PATH"; do
  manifest "$path" >/dev/null && continue
  case $path in
    library/busybox:latest) unit=busybox ;;
    library/debian:bookworm) unit=debian ;;
    library/debian:bookworm-zstd) unit=debian-zstd ;;
    *) die "$REG/$path is not in the registry" ;;
  esac
  log "building the test image $path"
  "$ROOT/hack/testimages/build.sh" "$unit" >&2
done

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
  local img
  for img in $(crictl_b images -q); do crictl_b rmi "$img" >/dev/null; done
  [[ -z $(crictl_b images -q) ]] || die "berth still lists images after rmi"
  assert_empty "$B/root/snapshots"
  assert_empty "$B/root/content/blobs/sha256"
  assert_empty "$B/root/content/ingest"
  # berthd deletes removed snapshots' files on a background thread; containerd's removal above
  # is synchronous. Cold means both deletions are over, so neither runs on a timed pull.
  for _ in $(seq 600); do
    [[ -z $(ls -A "$B/root/trash" 2>/dev/null) ]] && break
    sleep 0.1
  done
  assert_empty "$B/root/trash"
}

containerd_cold() {
  local img
  for img in $(crictl_c images -q); do crictl_c rmi "$img" >/dev/null 2>&1 || true; done
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

# timed_pull berth|containerd IMAGE: one cold pull; prints the PullImage call's time (as the bench
# client measured it, to the microsecond) and the daemon's CPU time, in ms.
timed_pull() {
  local t c0 c1 pid=$BERTHD_PID sock=$SOCK_B
  [[ $1 == containerd ]] && pid=$CTD_PID sock=$SOCK_C
  if [[ $1 == berth ]]; then berth_cold; else containerd_cold; fi
  sync # dirty pages of the previous pull are not this pull's to write back
  c0=$(cpu_ms "$pid")
  t=$("$CLIENT" --socket "$sock" pull "$2")
  c1=$(cpu_ms "$pid")
  echo "${t%% *} $((c1 - c0))"
}

# What `crictl pull` adds on top of the call: crictl's own start-up and connection, median of 5.
crictl_startup_ms() {
  local i t0 samples=()
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    crictl_b version >/dev/null
    samples+=("$((($(date +%s%N) - t0) / 1000)).0")
  done
  awk -v us="$(median "${samples[@]}")" 'BEGIN {printf "%.1f", us / 1000}'
}

# berthd's own account of its last pull (its "pulled" log line).
berth_logged_ms() {
  jq -r 'select(.message? == "pulled") | .elapsed_ms' "$B/berthd.log" 2>/dev/null | tail -n 1
}

LIMIT_MANIFEST=$(manifest "$LIMIT_PATH")
LAYERS=$(jq -r '.layers[] | "\(.size) \(.digest)"' <<<"$LIMIT_MANIFEST" | sort -n)
read -r LARGEST_SIZE LARGEST < <(tail -n 1 <<<"$LAYERS")
blob_url() { echo "http://$REG/v2/${LIMIT_PATH%:*}/blobs/$1"; }

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

# Per image (index into IMAGE_PATHS): space-separated samples, in round order.
declare -A BERTH=() BERTH_LOGGED=() BERTH_CPU=() CTD=() CTD_CPU=()
LOADS=()
LIMIT=() LIMIT_ALL=()
log "warm-up: one pull of each image by each (not counted), so the registry's files are in the page cache"
for path in "${IMAGE_PATHS[@]}"; do
  timed_pull berth "$REG/$path" >/dev/null
  timed_pull containerd "$REG/$path" >/dev/null
done
for i in $(seq "$RUNS"); do
  order="berth containerd"
  ((i % 2)) || order="containerd berth"
  for k in "${!IMAGE_PATHS[@]}"; do
    for who in $order; do
      t=$(timed_pull "$who" "$REG/${IMAGE_PATHS[$k]}")
      if [[ $who == berth ]]; then
        BERTH[$k]+="${t% *} " BERTH_CPU[$k]+="${t#* } "
        BERTH_LOGGED[$k]+="$(berth_logged_ms) "
      else
        CTD[$k]+="${t% *} " CTD_CPU[$k]+="${t#* } "
      fi
    done
  done
  LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
  LIMIT+=("$(limit_once)")
  LIMIT_ALL+=("$(limit_all_once)")
  for k in "${!IMAGE_PATHS[@]}"; do
    read -r -a bs <<<"${BERTH[$k]}"
    read -r -a cs <<<"${CTD[$k]}"
    log "round $i/$RUNS (load ${LOADS[-1]}): ${IMAGE_PATHS[$k]}: berth ${bs[-1]} ms, containerd ${cs[-1]} ms ($(ratio "${cs[-1]}" "${bs[-1]}")x)"
  done
  log "round $i/$RUNS: limit ${LIMIT[-1]} ms (all layers ${LIMIT_ALL[-1]} ms)"
done
PULLS_ENDED=$(now_ms)
berth_cold
containerd_cold
CRICTL_MS=$(crictl_startup_ms)

# berthd's proportional set size, KiB: what it costs the node, shared pages split among sharers.
pss_now() { awk '$1 == "Pss:" {print $2}' "/proc/$BERTHD_PID/smaps_rollup"; }
# pss_settled T0_MS: samples PSS each second until 30 s after T0 (when the last pull ended); prints
# "<first KiB at or under 16 MiB or -> <its second or -> <KiB at 30 s>".
pss_settled() {
  local kib first=- at=- s
  while :; do
    kib=$(pss_now)
    s=$((($(now_ms) - $1) / 1000))
    if [[ $first == - ]] && ((kib <= 16384)); then first=$kib at=$s; fi
    ((s >= 30)) && break
    sleep 1
  done
  echo "$first $at $kib"
}
pss_line() { # <what> <"first at last">
  local first at last
  read -r first at last <<<"$2"
  awk -v what="$1" -v f="$first" -v a="$at" -v l="$last" 'BEGIN {
    printf "%s: PSS %.1f MiB 30 s after the pull ended", what, l / 1024
    if (f == "-") printf ", never <= 16 MiB in those 30 s (target: MISSED)"
    else printf ", first <= 16 MiB %d s after (%.1f MiB; target <= 16 MiB within 30 s: met)", a, f / 1024
  }'
}
PSS_ROUNDS=$(pss_line "(f) berthd after $((RUNS + 1)) pulls and removals of each image" "$(pss_settled "$PULLS_ENDED")")
log "$PSS_ROUNDS"

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
  BIG_ENDED=$t1
  HWM_KIB=$(status_kib VmHWM)
  stop_pid "$SAMPLER_PID" "memory sampler"
  SAMPLER_PID=""
  SAMPLED_KIB=$(sort -n "$WORK/rss.samples" | tail -n 1)
  BIG_MS=$((t1 - t0))
  crictl_b rmi "$BIG_IMAGE" >/dev/null
  PSS_BIG=$(pss_line "    berthd after the 1 GiB pull and its removal" "$(pss_settled "$BIG_ENDED")")
  assert_empty "$B/root/snapshots"
  assert_empty "$B/root/content/blobs/sha256"
  BIG_LINE=$(awk -v h="$HWM_KIB" -v s="$SAMPLED_KIB" -v i="$IDLE_KIB" -v ms="$BIG_MS" -v b="$BIG_SIZE" 'BEGIN {
    printf "(e) berthd peak RSS pulling %s (%.0f MiB compressed): VmHWM %.1f MiB (target < 64: %s), highest 50 ms sample %.1f MiB, idle before %.1f MiB; pull took %d ms (%.0f MiB/s)",
      "'"$BIG_PATH"'", b / 1048576, h / 1024, (h / 1024 < 64) ? "met" : "MISSED", s / 1024, i / 1024, ms, b / 1048576 / (ms / 1000)
  }')
fi

# ---------------------------------------------------------------------------------------------------
# Report

verdict() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN {print ((op == ">=" && r >= t) || (op == "<=" && r <= t)) ? "met" : "MISSED"}'; }
LM=$(median "${LIMIT[@]}") AM=$(median "${LIMIT_ALL[@]}") LMIN=$(minimum "${LIMIT[@]}")
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT=$OUT/pull-$FS_MODE-$STAMP.txt
{
  echo "berth pull benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(machine_line)"
  echo "filesystem: $FS_DESC"
  echo "load average: at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg); 1-min load after each round: ${LOADS[*]} (other work on the machine skews the numbers)"
  echo "berthd: $(berthd_build "$ROOT")"
  echo "containerd: $(containerd --version | awk '{print $3}'), overlayfs snapshotter, max_concurrent_downloads 3 (both)"
  echo "client: examples/bench_client (one gRPC connection; the PullImage call's time); crictl's own start-up, not counted: $CRICTL_MS ms per call (median of 5 'crictl version')"
  echo "runs: $RUNS interleaved rounds (each image: berth then containerd, the order flipped every other round), each pull cold, after one warm-up pull of each image by each"
  for k in "${!IMAGE_PATHS[@]}"; do
    path=${IMAGE_PATHS[$k]}
    m=$(manifest "$path")
    read -r -a bs <<<"${BERTH[$k]}"
    read -r -a cs <<<"${CTD[$k]}"
    pairs=()
    for j in "${!bs[@]}"; do pairs+=("$(ratio "${cs[$j]}" "${bs[$j]}")"); done
    BM=$(median "${bs[@]}") CM=$(median "${cs[@]}")
    CB=$(ratio "$CM" "$BM")
    echo
    echo "image $REG/$path: $(jq '.layers | length' <<<"$m") layers, $(jq '[.layers[].size] | add' <<<"$m") bytes compressed ($(jq -r '.layers[0].mediaType' <<<"$m"))"
    echo "  PullImage times, ms (round order): berth ${bs[*]}; containerd ${cs[*]}"
    echo "  berthd 'pulled' log, ms: ${BERTH_LOGGED[$k]}"
    echo "  CPU, ms: berthd ${BERTH_CPU[$k]}; containerd (with its unpigz children) ${CTD_CPU[$k]}"
    echo "  (a) berth:      median $BM ms, min $(minimum "${bs[@]}") ms"
    echo "  (b) containerd: median $CM ms, min $(minimum "${cs[@]}") ms"
    echo "  (d) containerd/berth = $CB (target >= 3: $(verdict "$CB" 3 '>=')); per round ${pairs[*]}, median $(median "${pairs[@]}")"
    if [[ $path == "$LIMIT_PATH" ]]; then
      echo "      berth/limit = $(ratio "$BM" "$LM") (target <= 1.5: $(verdict "$(ratio "$BM" "$LM")" 1.5 '<=')); berth/limit(all layers at once) = $(ratio "$BM" "$AM")"
    fi
  done
  echo
  echo "(c) limit, $LIMIT_PATH largest layer $LARGEST ($LARGEST_SIZE bytes): ${LIMIT[*]} ms; median $LM ms, min $LMIN ms; all layers at once: ${LIMIT_ALL[*]} ms, median $AM ms"
  echo "$BIG_LINE"
  echo "$PSS_ROUNDS"
  [[ -z ${PSS_BIG:-} ]] || echo "$PSS_BIG"
} | tee "$RESULT"
echo "results: $RESULT" >&2
