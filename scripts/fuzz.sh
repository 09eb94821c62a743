#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Tests/Fuzz with -sanitize=fuzzer,address and runs each for
# a set time, starting from the seed corpus committed in Tests/Fuzz/Corpus/<target>.
#
#   scripts/fuzz.sh                      # every target, 300 s each
#   scripts/fuzz.sh safetensors 600      # one target for 10 minutes
#   scripts/fuzz.sh all 60               # every target, 60 s each
#   scripts/fuzz.sh all 0                # build only
#
# Targets: safetensors json unet-config denoiser-json png jpeg.
# New inputs go to .build-fuzz/corpus/<target> (not the committed seeds); crashes, leaks,
# timeouts and out-of-memory inputs to .build-fuzz/findings/<target>/, logs to
# .build-fuzz/logs/<target>.log. The script ends with one summary line per target and exits
# nonzero if any target left a finding. A finding reproduces with
#   .build-fuzz/release/fuzz-<target> <file>      (fuzz-image for png and jpeg)
# Environment: FUZZ_JOBS (build jobs, default 2), FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
all_targets=(safetensors json unet-config denoiser-json png jpeg)
target="${1:-all}"
seconds="${2:-300}"
if [ "$target" = all ]; then
  targets=("${all_targets[@]}")
else
  case " ${all_targets[*]} " in
    *" $target "*) targets=("$target") ;;
    *) echo "unknown target '$target'; one of: all ${all_targets[*]}" >&2; exit 2 ;;
  esac
fi
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }

# The harness of a target: png and jpeg run one harness with their own seeds and dictionary.
harness() {
  case "$1" in
    png | jpeg) echo "fuzz-image" ;;
    *) echo "fuzz-$1" ;;
  esac
}

scratch="$root/.build-fuzz"
build=(swift build -c release --package-path "$root/Tests/Fuzz" --scratch-path "$scratch" -j "${FUZZ_JOBS:-2}"
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -g -Xcc -fsanitize=fuzzer-no-link,address -Xcc -g)
[ "$target" = all ] || build+=(--product "$(harness "$target")")
echo "building ${targets[*]} (release, -sanitize=fuzzer,address) in $scratch"
# ld.gold warns once per ASan symbol it cannot export; the warnings are harmless noise.
mkdir -p "$scratch/logs"
if ! "${build[@]}" >"$scratch/logs/build.log" 2>&1; then
  grep -v "ld.gold: warning: Cannot export local symbol" "$scratch/logs/build.log" | tail -40 >&2
  echo "build failed (full log: $scratch/logs/build.log)" >&2
  exit 1
fi

[ "$seconds" -gt 0 ] || { echo "built; 0 seconds asked, nothing run"; exit 0; }

# The readers that take a path write each input to a file here (tmpfs when available).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm="${TMPDIR:-/tmp}"
export FUZZ_SCRATCH="$(mktemp -d "$shm/distillery-fuzz.XXXXXX")"
trap 'rm -rf "$FUZZ_SCRATCH"' EXIT
# Swift's own crash backtracer reads the crashed stack from another thread, which ASan reports
# as a second, spurious error after the real one; libFuzzer and ASan print the stacks anyway.
export SWIFT_BACKTRACE=enable=no
# Leaks outside Distillery, each with its reason in the file.
export LSAN_OPTIONS="suppressions=$root/Tests/Fuzz/lsan-suppressions.txt:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

dictionary() {
  case "$1" in
    json | unet-config | denoiser-json) echo "$root/Tests/Fuzz/Dictionaries/json.dict" ;;
    *) echo "$root/Tests/Fuzz/Dictionaries/$1.dict" ;;
  esac
}

summary=()
status=0
for t in "${targets[@]}"; do
  corpus="$scratch/corpus/$t"
  findings="$scratch/findings/$t"
  log="$scratch/logs/$t.log"
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  echo "fuzzing $t for ${seconds}s (log: $log)"
  # -rss_limit_mb: an image at the pixel limit (2^26) takes up to 512 MB of pixels and 1 GB of
  # floats, more under ASan's quarantine (PNG peaked at 2.3 GB), so libFuzzer's default 2 GB
  # would report accepted sizes as out-of-memory findings.
  set +e
  # shellcheck disable=SC2086
  "$scratch/release/$(harness "$t")" "$corpus" "$root/Tests/Fuzz/Corpus/$t" \
    -dict="$(dictionary "$t")" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 \
    -max_len=16384 -artifact_prefix="$findings/" -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1
  rc=$?
  set -e
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  units=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  found=$(find "$findings" -type f | wc -l)
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
  summary+=("$(printf '%-14s %6ss  execs %10s  exec/s %7s  cov %5s  ft %6s  corpus %-10s findings %s (rc %s)' \
    "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" "$found" "$rc")")
  echo "${summary[-1]}"
done
echo "--- $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m)"
printf '%s\n' "${summary[@]}"
exit "$status"
