#!/usr/bin/env bash
# Runs a toy manifest once per variant (each a line of `--set` arguments) and prints the last
# evaluation's sharpness figures (mode-coverage's within-3std, min-mode-mass, modes-at-0.5,
# modes-at-0.7,
# and energy-distance when the manifest evaluates it) with the wall clock.
#
#   scripts/toy-sweep.sh MANIFEST VARIANTS_FILE [extra --set ...]
#
# VARIANTS_FILE holds one variant per line, e.g.
#   scores.fake.optimizer.lr=0.003 scores.fake.updatesPerStep=2
# (an empty line or "-" is the manifest as it is; lines starting with # are skipped).
# Evaluation is 4096 samples at the end only. Needs `swift build -c release` first.
set -euo pipefail
manifest=$1
variants=$2
shift 2
pipeline=${PIPELINE:-.build/release/pipeline}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-70s %8s %8s %5s %5s %8s %6s\n' variant within3 minmass m0.5 m0.7 energy secs
while IFS= read -r line || [[ -n $line ]]; do
  [[ $line == \#* ]] && continue
  args=()
  for a in $line; do [[ $a == - ]] || args+=(--set "$a"); done
  for a in "$@"; do args+=(--set "$a"); done
  start=$(date +%s.%N)
  if ! "$pipeline" run "$manifest" --quiet --force --output "$out/run" \
    --set evaluation.samples=4096 --set 'evaluation.every=1000000' "${args[@]}" >"$out/log" 2>&1; then
    printf '%-70s failed: %s\n' "${line:--}" "$(tail -1 "$out/log")"
    continue
  fi
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  python3 - "$out/run/metrics.jsonl" "${line:--}" "$secs" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e = [r for r in rows if any(k.startswith("eval/") for k in r)][-1]
g = lambda k: e.get("eval/" + k, float("nan"))
print(f"{sys.argv[2][:70]:<70} {g('within-3std'):8.3f} {g('min-mode-mass'):8.3f} {g('modes-at-0.5'):5.0f} {g('modes-at-0.7'):5.0f} {g('energy-distance'):8.4f} {float(sys.argv[3]):6.1f}")
PY
done <"$variants"
