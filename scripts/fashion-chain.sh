#!/usr/bin/env bash
# The class-conditional Fashion-MNIST chain (docs/fashion-chain.md), start to finish:
#   1. a classifier on Fashion-MNIST (FD_classifier, class-accuracy),
#   2. a class-conditional epsilon-prediction UNet teacher with label dropout
#      (Templates/manifests/fashion-teacher.json; its evaluation is its guided DDIM-50),
#   3. noise-sample pairs of the teacher's guided 50-step DDIM, class i mod 10,
#   4. a one-step class-conditional student: DMD with guidance on the real score plus
#      regression on the pairs (Templates/manifests/fashion-student.json),
# then a table of the teacher's and the student's figures, overall and per class.
#
#   scripts/fashion-chain.sh [OUT]          (default OUT: runs/fashion-chain)
#
# Needs the Debian package dataset-fashion-mnist (scripts/setup.sh installs it).
# Environment:
#   GUIDANCE=3        the guidance scale of the teacher's evaluation, the pairs and the real score
#   PAIRS=2048        pairs to precompute
#   SET="training.steps=500 ..."   --set overrides given to both training runs
#   TEACHER_SET, STUDENT_SET       --set overrides for one run only
#   TEACHER=DIR       distil this trained teacher (a denoiser folder) instead of training one;
#                     Templates/teachers/fashion-epsilon is the chain's own full-size teacher
#   CLASSIFIER_STEPS=2000          training steps of the classifier
# Exit status: pipeline's (2 for bad input, naming the file and key).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/runs/fashion-chain}" && cd "${1:-$root/runs/fashion-chain}" && pwd)"
pipeline="${PIPELINE:-$root/.build/release/pipeline}"
[ -x "$pipeline" ] || { echo "build first: swift build -c release" >&2; exit 2; }
teacher_manifest="$root/Templates/manifests/fashion-teacher.json"
student_manifest="$root/Templates/manifests/fashion-student.json"
guidance="${GUIDANCE:-3}"
start=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - start )) s since start)"; }

common=()
for kv in ${SET:-}; do common+=(--set "$kv"); done
teacher=(--set "evaluation.metrics[0].classifier=$out/classifier" --set "generator.guidance=$guidance")
for kv in ${TEACHER_SET:-}; do teacher+=(--set "$kv"); done
student=(--set "teacher.path=${TEACHER:-$out/teacher/denoiser}" --set "losses[1].pairs=$out/pairs"
  --set "evaluation.metrics[0].classifier=$out/classifier" --set "scores.real.guidanceScale=$guidance"
  --set "evaluation.metrics[1].guidance=$guidance")
for kv in ${STUDENT_SET:-}; do student+=(--set "$kv"); done

stage "classifier: $out/classifier"
"$pipeline" train-classifier --data "$teacher_manifest" --out "$out/classifier" --steps "${CLASSIFIER_STEPS:-2000}" \
  --width 32

if [ -n "${TEACHER:-}" ]; then
  stage "teacher: $TEACHER (given)"
else
  stage "teacher: $out/teacher"
  "$pipeline" run "$teacher_manifest" "${common[@]}" "${teacher[@]}" --output "$out/teacher" --quiet
fi

stage "pairs: $out/pairs"
"$pipeline" precompute "$student_manifest" "${common[@]}" "${student[@]}" --out "$out/pairs" \
  --count "${PAIRS:-2048}" --steps 50 --sampler ddim --guidance "$guidance" --clip-sample --quiet

stage "student: $out/student"
"$pipeline" run "$student_manifest" "${common[@]}" "${student[@]}" --output "$out/student" --quiet

stage "done"
# The last evaluation of each run (metrics.jsonl holds one JSON object per line).
figure() { [ -f "$1/metrics.jsonl" ] || return 0; grep '"eval/' "$1/metrics.jsonl" | tail -1 | grep -o "\"eval/$2\": [-0-9.eE+]*" | sed 's/.*: //' || true; }
printf '%-28s %14s %14s\n' "" "teacher" "student"
keys="FD_classifier class-accuracy precision_classifier recall_classifier FD_pixels teacher-student-l2 sample-std"
for k in 0 1 2 3 4 5 6 7 8 9; do keys="$keys FD_classifier/class-$k class-accuracy/class-$k"; done
for key in $keys; do
  printf '%-28s %14s %14s\n' "$key" "$(figure "$out/teacher" "$key")" "$(figure "$out/student" "$key")"
done
printf '%-28s %14s %14s\n' "grid" "$out/teacher/samples" "$out/student/samples"
