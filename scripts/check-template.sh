#!/usr/bin/env bash
# Proves "copy the template, implement, register, name it in a manifest": copies
# Templates/LossTerm into a scratch package that depends on this checkout by path, builds its
# `my-pipeline` (Distillery's CLI plus the template's loss), validates and runs the template's
# manifest, which names the new loss id, for a few training steps, and checks the run folder.
#
# The scratch package builds into this checkout's .build (override with SCRATCH_PATH) with the
# flags of the test run before it (CHECK_TEMPLATE_FLAGS, default the README's test flags), so
# Distillery's modules are reused and only the template's target and the executable compile.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch_path="${SCRATCH_PATH:-$root/.build}"
flags="${CHECK_TEMPLATE_FLAGS--Xswiftc -enable-testing}"
work="$(mktemp -d "${TMPDIR:-/tmp}/distillery-template.XXXXXX")"
trap 'rm -rf "$work"' EXIT

package="$work/MyComponents"
cp -R "$root/Templates/LossTerm" "$package"
rm -rf "$package/.build" "$package/runs"
# Point the dependency at this checkout; a path dependency's identity is its folder's name.
identity="$(basename "$root" | tr '[:upper:]' '[:lower:]')"
sed -i.orig -e "s|\.package(path: \"../distillery\")|.package(path: \"$root\")|" \
  -e "s|package: \"distillery\"|package: \"$identity\"|" "$package/Package.swift"
rm -f "$package/Package.swift.orig"
grep -q "$root" "$package/Package.swift" || { echo "check-template: could not rewrite the dependency path" >&2; exit 1; }
# The same pins as the checkout, so nothing is fetched.
if [ -f "$root/Package.resolved" ]; then cp "$root/Package.resolved" "$package/"; fi

start=$(date +%s)
# Built as `swift test` builds (tests included), so that the modules' flags match the test run
# before and nothing of Distillery recompiles; my-pipeline is built with them.
# shellcheck disable=SC2086
swift build -c release $flags --build-tests --package-path "$package" --scratch-path "$scratch_path"
# shellcheck disable=SC2086
bin="$(swift build -c release $flags --build-tests --package-path "$package" --scratch-path "$scratch_path" --show-bin-path)/my-pipeline"
echo "check-template: built my-pipeline and the template's test in $(( $(date +%s) - start ))s"

"$bin" components > "$work/components.txt"
grep -q "moment-matching" "$work/components.txt" || { echo "check-template: moment-matching is not registered" >&2; exit 1; }
"$bin" validate "$package/manifest.json"
"$bin" run "$package/manifest.json" --output "$work/run" --set training.steps=20 --set training.checkpointEvery=10 --quiet

for file in generator.safetensors metrics.jsonl report.html manifest.json; do
  [ -s "$work/run/$file" ] || { echo "check-template: the run left no $file" >&2; exit 1; }
done
grep -q '"loss/moment-matching"' "$work/run/metrics.jsonl" \
  || { echo "check-template: metrics.jsonl has no loss/moment-matching" >&2; exit 1; }
# The template's own test, as a user would run it.
# shellcheck disable=SC2086
swift test -c release $flags --skip-build --package-path "$package" --scratch-path "$scratch_path"
echo "check-template: OK ($(( $(date +%s) - start ))s): a copy of Templates/LossTerm trained with its loss"
