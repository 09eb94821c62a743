#!/usr/bin/env bash
# Crash test: SIGKILL `pipeline run` at random moments, resume, and check that the run ends with
# the same generator.safetensors, byte for byte, as an uninterrupted run, and that no checkpoint
# is ever left half-written or lost.
#
#   scripts/crash-test.sh                    # 10 kills on scripts/crash-test.json
#   scripts/crash-test.sh 60                 # 60 kills
#   scripts/crash-test.sh 20 my-manifest.json
#
# First an uninterrupted reference run. Then rounds: a round starts a run in a fresh folder and
# kills it (kill -KILL, no warning) again and again, restarting it after each kill with --resume
# (or plainly, when the kill came before the run folder had its manifest.json); once the kills
# are spent the run is left to finish and its generator.safetensors is compared with `cmp`.
# A new round starts when a run finishes before the kills are spent.
#
# Each kill waits a random delay: uniform in [0, 0.6 x the reference run's time] (one kill in
# two), or in [0, 80 ms] (one in four, and one in two at a round's first start: start-up, the
# first steps and checkpoints); or, one kill
# in four, it waits until the run has begun its n-th checkpoint write (a `.step-N.partial`
# folder appears; n random in 1..12) and kills it then, so that kills land inside checkpoint
# writes whatever the disk's speed. All are genuine timing: the binary has no test hook.
#
# After every kill, with the process dead:
#   - `pipeline checkpoints` reads every complete checkpoint back (header, offsets, metadata,
#     every tensor) and must exit 0;
#   - every checkpoint complete before the kill is still there, unless keepCheckpoints newer
#     ones exist (the rotation);
#   - a `.step-N.partial` folder left behind counts as a kill inside a checkpoint write.
# At the end of each round the run folder must hold no leftovers of the kills (temporary files,
# partial checkpoints): the next run in a folder removes them.
#
# Environment: PIPELINE (default .build/release/pipeline; build it with swift build -c release),
# CRASH_SEED (seed of the random delays, default: the time), CRASH_DIR (work folder, default a
# new temporary one; kept on failure, removed on success unless CRASH_KEEP=1).
# Exit 0 when every check passed; 1 with the failing check named otherwise; 2 for bad arguments.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
kills_wanted="${1:-10}"
manifest="${2:-$root/scripts/crash-test.json}"
pipeline="${PIPELINE:-$root/.build/release/pipeline}"
seed="${CRASH_SEED:-$(date +%s)}"
[[ "$kills_wanted" =~ ^[0-9]+$ ]] || { echo "KILLS must be a whole number, got '$kills_wanted'" >&2; exit 2; }
[ -f "$manifest" ] || { echo "no manifest at $manifest" >&2; exit 2; }
[ -x "$pipeline" ] || { echo "no pipeline executable at $pipeline (swift build -c release)" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "CRASH_SEED must be a whole number" >&2; exit 2; }
RANDOM=$((seed % 32768))
work="${CRASH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/distillery-crash.XXXXXX")}"
mkdir -p "$work"
log="$work/log.txt"
shopt -s nullglob

now_ms() { date +%s%3N; }
fail() {
  echo "FAIL: $*" >&2
  echo "work folder kept: $work (log: $log)" >&2
  exit 1
}
# A random integer in [0, n) for n up to about 10^9.
random_below() { echo $(((RANDOM * 32768 + RANDOM) % $1)); }

# Sets `current` to the complete checkpoints of run folder $1 as `pipeline checkpoints` reads
# them, one step a line; fails the test if any does not read back.
complete_checkpoints() {
  local out
  current=""
  [ -f "$1/manifest.json" ] || return 0
  out=$("$pipeline" checkpoints "$1" 2>>"$log") || fail "a checkpoint in $1 does not read back: $(tail -3 "$log")"
  current=$(sed -nE 's/^step-0*([0-9]+) ok .*/\1/p' <<<"$out")
}

echo "crash test: $kills_wanted kills of $pipeline run $manifest (seed $seed, work $work)"
started=$(now_ms)
reference="$work/reference"
t0=$(now_ms)
"$pipeline" run "$manifest" --output "$reference" --quiet >>"$log" 2>&1 || fail "the reference run failed (see $log)"
reference_ms=$(($(now_ms) - t0))
[ -f "$reference/generator.safetensors" ] || fail "the reference run wrote no generator.safetensors"
keep=$(sed -nE 's/.*"keepCheckpoints" *: *([0-9]+).*/\1/p' "$reference/manifest.json" | head -1)
[ -n "$keep" ] || fail "no keepCheckpoints in $reference/manifest.json"
max_delay_ms=$((reference_ms * 6 / 10 + 1))
echo "reference run: ${reference_ms} ms, keepCheckpoints $keep; delays up to ${max_delay_ms} ms"

kills=0 in_write=0 before_first=0 by_delay=0 by_write=0 rounds=0 attempts=0 compared=0
while [ "$kills" -lt "$kills_wanted" ] || [ "$rounds" -eq 0 ]; do
  rounds=$((rounds + 1))
  run="$work/round-$rounds"
  previous=""
  round_attempts=0
  while true; do
    attempts=$((attempts + 1))
    round_attempts=$((round_attempts + 1))
    [ "$round_attempts" -le 1000 ] || fail "round $rounds made no progress in 1000 attempts"
    flags=(--quiet)
    [ -f "$run/manifest.json" ] && flags+=(--resume)
    echo "--- round $rounds attempt $round_attempts: run ${flags[*]}" >>"$log"
    "$pipeline" run "$manifest" --output "$run" "${flags[@]}" >>"$log" 2>&1 &
    pid=$!
    if [ "$kills" -lt "$kills_wanted" ]; then
      mode=$((RANDOM % 4))
      # A round's first start is killed early one time in two, so that some kills come before
      # its first checkpoint (then --resume starts the run again from step 0).
      [ "$round_attempts" -eq 1 ] && [ $((RANDOM % 2)) -eq 0 ] && mode=1
      if [ "$mode" -eq 0 ]; then
        # Kill inside the n-th checkpoint write after the start.
        how="write"
        target=$((1 + RANDOM % 12))
        seen=0 last=""
        while kill -0 "$pid" 2>/dev/null; do
          partials=("$run"/checkpoints/.step-*.partial)
          if [ "${#partials[@]}" -gt 0 ] && [ "${partials[0]}" != "$last" ]; then
            last="${partials[0]}"
            seen=$((seen + 1))
            [ "$seen" -ge "$target" ] && break
          fi
        done
      else
        how="delay"
        # One kill in four comes early: start-up, the first steps, the first checkpoint.
        if [ "$mode" -eq 1 ]; then delay=$(random_below 80); else delay=$(random_below "$max_delay_ms"); fi
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
      fi
      kill -KILL "$pid" 2>/dev/null
      [ "$how" = write ] && echo "kill at checkpoint write $target ($seen seen)" >>"$log"
      [ "$how" = delay ] && echo "kill after $delay ms" >>"$log"
    fi
    # (bash reports a killed job on its standard error at the wait; that line is noise here)
    { wait "$pid"; } 2>/dev/null
    status=$?
    if [ "$status" -eq 137 ]; then
      kills=$((kills + 1))
      if [ "$how" = write ]; then by_write=$((by_write + 1)); else by_delay=$((by_delay + 1)); fi
      leftover=("$run"/checkpoints/.step-*.partial)
      [ "${#leftover[@]}" -gt 0 ] && in_write=$((in_write + 1))
      complete_checkpoints "$run"
      [ -z "$current" ] && before_first=$((before_first + 1))
      echo "kill $kills ($how): complete checkpoints now [$(tr '\n' ' ' <<<"$current")], partial writes left ${#leftover[@]}" >>"$log"
      # A checkpoint complete before this kill may be gone only by the keep-K rotation, which
      # removes a checkpoint once `keep` newer ones are complete.
      for step in $previous; do
        grep -qx "$step" <<<"$current" && continue
        newer=$(awk -v s="$step" '$1 > s' <<<"$current" | wc -l)
        [ "$newer" -ge "$keep" ] || fail "kill $kills ($how): checkpoint step $step was complete before the kill and is gone, with only $newer newer ones"
      done
      previous="$current"
      continue
    fi
    [ "$status" -eq 0 ] || fail "round $rounds: pipeline run ${flags[*]} exited with $status (see $log)"
    cmp "$reference/generator.safetensors" "$run/generator.safetensors" >>"$log" 2>&1 \
      || fail "round $rounds: generator.safetensors differs from the uninterrupted run's"
    compared=$((compared + 1))
    complete_checkpoints "$run"
    stale=$(find "$run" -name '.*' \( -name '*.tmp-*' -o -name '*.partial' \) | head -3)
    [ -z "$stale" ] || fail "round $rounds: leftovers of killed runs remain: $stale"
    echo "round $rounds: finished after $((round_attempts - 1)) kills; generator.safetensors identical" | tee -a "$log"
    break
  done
done
elapsed=$(($(now_ms) - started))
echo "passed: $kills kills ($by_delay after a random delay, $by_write at a checkpoint write) in $rounds rounds," \
  "$attempts starts, $(printf '%d.%d' $((elapsed / 1000)) $((elapsed % 1000 / 100))) s"
echo "  $in_write kills left a partial checkpoint write behind (killed inside a write), $((kills - in_write)) did not" \
  "(killed in a step, an evaluation, start-up, or between a write's rename and its end);" \
  "$before_first came before the round's first checkpoint was complete" \
  "($(grep -c 'holds no complete checkpoint yet' "$log") resumes started again from step 0)"
echo "  $compared final generator.safetensors identical to the uninterrupted run's; no checkpoint half-written or lost"
[ "${CRASH_KEEP:-0}" = 1 ] || [ -n "${CRASH_DIR:-}" ] || rm -rf "$work"
