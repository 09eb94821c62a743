#!/usr/bin/env bash
# Data-parallel scaling of `pipeline run` on this machine: time per step at 1 and 2 ranks
# (docs/distributed.md).
#
#   scripts/scaling.sh [MANIFEST] [STEPS] [BATCH]
#
# Runs MANIFEST (default Templates/manifests/default.json) for STEPS steps (default 1000):
#   1 rank  x BATCH rows           (the baseline)
#   2 ranks x BATCH rows each      (weak scaling: twice the samples per step)
#   1 rank  x 2*BATCH rows         (the same global batch in one process)
#   2 ranks x BATCH rows           (strong scaling against the line above)
# and prints seconds per step (training only: the last metrics line's clock over the steps)
# and the efficiency of each 2-rank run. Extra --set overrides go in SET="k=v k=v".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
manifest="${1:-$root/Templates/manifests/default.json}"
steps="${2:-1000}"
batch="${3:-256}"
pipeline="$root/.build/release/pipeline"
[ -x "$pipeline" ] || { echo "build first: swift build -c release" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun not found: bash scripts/setup.sh installs Open MPI" >&2; exit 2; }
export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader}" OMPI_MCA_oob_tcp_if_include="${OMPI_MCA_oob_tcp_if_include:-lo}"
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
extra=()
for kv in ${SET:-}; do extra+=(--set "$kv"); done

# seconds per step of one run: ranks, per-rank batch
run() {
  local ranks=$1 rows=$2 out="$work/run-$1-$2"
  local args=(run "$manifest" --output "$out" --quiet --force --set "training.steps=$steps"
    --set "training.batchSize=$rows" --set "evaluation.every=1000000000" "${extra[@]}")
  if [ "$ranks" = 1 ]; then "$pipeline" "${args[@]}"; else
    mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" "$pipeline" "${args[@]}"; fi
  # The training clock of the last step's metrics line, before the final evaluation.
  python3 - "$out/metrics.jsonl" "$steps" <<'PY' 2>/dev/null || awk -v s="$steps" -F'"time": ' '/"loss\/total"/ {split($2, a, ","); t = a[1]} END {printf "%.6f\n", t / s}' "$out/metrics.jsonl"
import json, sys
t = [json.loads(l)["time"] for l in open(sys.argv[1]) if "loss/total" in l][-1]
print(f"{t / int(sys.argv[2]):.6f}")
PY
}

one=$(run 1 "$batch")
two=$(run 2 "$batch")
oneDouble=$(run 1 $((2 * batch)))
echo "manifest $(basename "$manifest"), $steps steps, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v a="$one" -v b="$two" -v c="$oneDouble" -v n="$batch" 'BEGIN {
  printf "1 rank  x %4d rows: %.3f ms/step\n", n, a * 1000
  printf "2 ranks x %4d rows: %.3f ms/step  (weak scaling efficiency %.2f: t1/t2)\n", n, b * 1000, a / b
  printf "1 rank  x %4d rows: %.3f ms/step\n", 2 * n, c * 1000
  printf "2 ranks x %4d rows: speed-up %.2f over 1 rank x %d (strong scaling efficiency %.2f)\n", n, c / b, 2 * n, c / b / 2
}'
