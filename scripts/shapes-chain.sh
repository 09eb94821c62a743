#!/usr/bin/env bash
# The image chain of docs/shapes-chain.md, start to finish on this machine:
#   1. a classifier on the data (the metrics' feature extractor and mode judge),
#   2. a UNet teacher trained on the data (Templates/manifests/shapes-teacher.json),
#   3. noise-sample pairs from the teacher's 50-step DDIM,
#   4. a one-step student distilled with DMD plus regression on the pairs
#      (Templates/manifests/shapes-student.json),
# then a table of the teacher's and the student's evaluation figures.
#
#   scripts/shapes-chain.sh [OUT]          (default OUT: runs/shapes-chain)
#
# Environment:
#   DATA='{"type": "image-folder", "path": "/abs/images", "size": 16, "labels": true}'
#         another data entry for the whole chain (a folder of PNG/JPEG images with one
#         subfolder per class, or a tensors file with labels); default: the manifests' shapes
#   PAIRS=2048   pairs to precompute
#   SET="training.steps=500 ..."   --set overrides given to both training runs
#   STUDENT_SET="..."              --set overrides given to the student's run only
#   CLASSIFIER_STEPS=600           training steps of the classifier
# Exit status: pipeline's (2 for bad input, naming the file and key).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/runs/shapes-chain}" && cd "${1:-$root/runs/shapes-chain}" && pwd)"
pipeline="${PIPELINE:-$root/.build/release/pipeline}"
[ -x "$pipeline" ] || { echo "build first: swift build -c release" >&2; exit 2; }
teacher_manifest="$root/Templates/manifests/shapes-teacher.json"
student_manifest="$root/Templates/manifests/shapes-student.json"
start=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - start )) s since start)"; }

common=(--set "evaluation.metrics[0].classifier=$out/classifier" --set "evaluation.metrics[1].classifier=$out/classifier")
[ -n "${DATA:-}" ] && common+=(--set "data=$DATA")
for kv in ${SET:-}; do common+=(--set "$kv"); done
student=(--set "teacher.path=$out/teacher/denoiser" --set "losses[1].pairs=$out/pairs")
for kv in ${STUDENT_SET:-}; do student+=(--set "$kv"); done

stage "classifier: $out/classifier"
"$pipeline" train-classifier --data "${DATA:-$teacher_manifest}" --out "$out/classifier" --steps "${CLASSIFIER_STEPS:-600}"

stage "teacher: $out/teacher"
"$pipeline" run "$teacher_manifest" "${common[@]}" --output "$out/teacher" --quiet

stage "pairs: $out/pairs"
"$pipeline" precompute "$student_manifest" "${common[@]}" "${student[@]}" --out "$out/pairs" \
  --count "${PAIRS:-2048}" --steps 50 --sampler ddim --quiet

stage "student: $out/student"
"$pipeline" run "$student_manifest" "${common[@]}" "${student[@]}" --output "$out/student" --quiet

stage "done"
# The last evaluation of each run (metrics.jsonl holds one JSON object per line).
figure() { grep '"eval/' "$1/metrics.jsonl" | tail -1 | grep -o "\"eval/$2\": [-0-9.eE+]*" | sed 's/.*: //' || true; }
printf '%-26s %14s %14s\n' "" "teacher" "student"
for key in FD_classifier KID_classifier precision_classifier recall_classifier density_classifier \
  coverage_classifier FD_pixels mode-coverage modes-covered \
  teacher-student-l2 sample-mean sample-std; do
  printf '%-26s %14s %14s\n' "$key" "$(figure "$out/teacher" "$key")" "$(figure "$out/student" "$key")"
done
printf '%-26s %14s %14s\n' "grid" "$out/teacher/samples" "$out/student/samples"
