#!/usr/bin/env bash
# The text-to-image chain (docs/text-to-image-chain.md), start to finish, on captioned
# Fashion-MNIST (each image captioned by its class: "a t-shirt", ..., "an ankle boot"):
#   1. a classifier on Fashion-MNIST (FD_classifier, prompt-following as class-accuracy),
#   2. a KL autoencoder, 28x28x1 images to 7x7x4 latents (Templates/manifests/t2i-vae.json),
#      its scaling_factor then set to 1 / the posterior means' standard deviation,
#   3. a text-conditional latent v-prediction teacher: a new UNet2DConditionModel with
#      sd-tiny's frozen random CLIP text encoder and tokenizer, prompt dropout 0.1
#      (Templates/manifests/t2i-teacher.json; its evaluation is its guided DDIM-50),
#   4. (noise, latent, prompt) triples of the teacher's guided 50-step DDIM, prompt i mod 10,
#   5. a one-step student: DMD with guidance on the real score and regression on the
#      triples (t2i-student.json),
# then a table of the teacher's and the student's figures, overall and per prompt.
#
#   scripts/text-to-image-chain.sh [OUT]          (default OUT: runs/t2i-chain)
#
# Needs the Debian package dataset-fashion-mnist (scripts/setup.sh installs it).
# Environment:
#   GUIDANCE=3        the guidance scale of the teacher's evaluation, the triples and the real score
#   PAIRS=2048        triples to precompute
#   SET="training.steps=500 ..."   --set overrides given to every training run
#   VAE_SET, TEACHER_SET, STUDENT_SET   --set overrides for one run only
#   CLASSIFIER_STEPS=6000          training steps of the classifier
# Exit status: pipeline's (2 for bad input, naming the file and key).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/runs/t2i-chain}" && cd "${1:-$root/runs/t2i-chain}" && pwd)"
pipeline="${PIPELINE:-$root/.build/release/pipeline}"
[ -x "$pipeline" ] || { echo "build first: swift build -c release" >&2; exit 2; }
manifests="$root/Templates/manifests"
guidance="${GUIDANCE:-3}"
start=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - start )) s since start)"; }
vae=(); teacher=(); student=()
for kv in ${SET:-} ${VAE_SET:-}; do vae+=(--set "$kv"); done
for kv in ${SET:-} ${TEACHER_SET:-}; do teacher+=(--set "$kv"); done
for kv in ${SET:-} ${STUDENT_SET:-}; do student+=(--set "$kv"); done
# The last logged value of KEY in a run's metrics.jsonl.
figure() { grep "\"$2\"" "$1/metrics.jsonl" | tail -1 | grep -o "\"$2\": [-0-9.eE+]*" | sed 's/.*: //' || true; }

stage "classifier: $out/classifier"
"$pipeline" train-classifier --data "$manifests/fashion-teacher.json" --out "$out/classifier" \
  --steps "${CLASSIFIER_STEPS:-6000}" --width 32 --held-out 2000

stage "autoencoder: $out/vae"
"$pipeline" run "$manifests/t2i-vae.json" "${vae[@]}" --output "$out/vae" --quiet
std="$(figure "$out/vae" autoencoder/latent-std)"
scale="$(awk -v s="$std" 'BEGIN { printf "%.4f", 1 / s }')"
sed -i "s/\"scaling_factor\" *: *[-0-9.eE+]*/\"scaling_factor\" : $scale/" "$out/vae/vae/config.json"
echo "latent std $std: scaling_factor $scale"

stage "teacher: $out/teacher"
"$pipeline" run "$manifests/t2i-teacher.json" "${teacher[@]}" \
  --set "generator.network.vae=$out/vae/vae" --set "generator.guidance=$guidance" \
  --set "evaluation.metrics[0].classifier=$out/classifier" --output "$out/teacher" --quiet

student+=(--set "teacher.path=$out/teacher/denoiser" --set "scores.real.guidanceScale=$guidance"
  --set "evaluation.metrics[0].classifier=$out/classifier" --set "losses[1].pairs=$out/pairs")

stage "triples: $out/pairs"
"$pipeline" precompute "$manifests/t2i-student.json" "${student[@]}" --out "$out/pairs" \
  --count "${PAIRS:-2048}" --steps 50 --sampler ddim --guidance "$guidance" --quiet

stage "student: $out/student"
"$pipeline" run "$manifests/t2i-student.json" "${student[@]}" --output "$out/student" --quiet

stage "done"
printf '%-28s %14s %14s\n' "" "teacher" "student"
keys="eval/FD_classifier eval/class-accuracy eval/precision_classifier eval/recall_classifier eval/sample-std"
for k in 0 1 2 3 4 5 6 7 8 9; do keys="$keys eval/FD_classifier/class-$k eval/class-accuracy/class-$k"; done
for key in $keys; do
  printf '%-28s %14s %14s\n' "${key#eval/}" "$(figure "$out/teacher" "$key")" "$(figure "$out/student" "$key")"
done
printf '%-28s %14s %14s\n' "grid" "$out/teacher/samples" "$out/student/samples"
