#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (libFuzzer, built on the pinned STABLE toolchain with the
# sanitizer-coverage flags below: docs/fuzzing.md, docs/adr/0004-fuzzing-on-stable.md) for
# SECONDS_PER_TARGET seconds each (default 20: under 3 minutes for the 8 targets), starting
# from the committed seeds in fuzz/corpus/<target>/ plus whatever earlier runs found. Fails if
# any target crashes, hangs or runs out of memory, naming the input that did it.
# Usage: e2e/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#        e2e/fuzz.sh --build    only builds every target (hack/test-all.sh does so in the background)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"

build_only=0
[[ ${1:-} == --build ]] && { build_only=1; shift; }
seconds=${1:-20}
shift || true
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz: SECONDS_PER_TARGET must be a positive number" >&2; exit 2; }
if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -vx berth-fuzz)
fi

# Instrumented builds differ from berth's own: they get a target dir of their own. The explicit
# --target keeps the flags off build scripts and proc macros, which run on the host.
export CARGO_TARGET_DIR="${BERTH_FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth"
unset CARGO_ENCODED_RUSTFLAGS
echo "fuzz: building ${#targets[@]} targets ($(rustc -V))"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --quiet --release --manifest-path fuzz/Cargo.toml --target "$triple" "${bins[@]}"
((build_only == 0)) || exit 0

out="$CARGO_TARGET_DIR/runs"
# What the targets write (layer_unpack's dirs) goes in a temp dir of this run's own.
TMPDIR=$(mktemp -d /tmp/berth-fuzz.XXXXXX)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
failed=()
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  [[ -d $seeds && -n "$(ls -A "$seeds")" ]] || { echo "fuzz: $t has no seed corpus in $seeds" >&2; exit 1; }
  corpus="$out/corpus/$t"     # what the fuzzer finds goes here, never into the committed seeds
  artifacts="$out/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  log="$out/$t.log"
  status=0
  "$CARGO_TARGET_DIR/$triple/release/$t" "$corpus" "$seeds" \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if ((status == 0)); then
    echo "ok: $t: ${runs:-?} inputs in ${seconds}s, corpus $(ls "$corpus" | wc -l)"
    continue
  fi
  failed+=("$t")
  echo "FAIL: $t (exit $status); from $log:" >&2
  grep -m1 -A4 -E "panicked at|ERROR: libFuzzer" "$log" | cut -c1-400 >&2 || tail -n 20 "$log" >&2
  for input in $(grep -o "Test unit written to [^ ]*" "$log" | awk '{print $NF}'); do
    echo "FAIL: $t: crashing input: $input (replay: $CARGO_TARGET_DIR/$triple/release/$t $input)" >&2
  done
done
((${#failed[@]} == 0)) || { echo "fuzz: crashed: ${failed[*]}" >&2; exit 1; }
echo "fuzz: ${#targets[@]} targets, no crash"
