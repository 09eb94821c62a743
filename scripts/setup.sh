#!/usr/bin/env bash
# Installs the Debian packages Distillery builds against (idempotent; needs root or sudo).
# Open MPI (libopenmpi-dev, openmpi-bin) is optional: the build never needs it and a run loads
# it only under mpirun (docs/distributed.md); it is here so that the 2-rank test runs in CI.
# dataset-fashion-mnist (MIT) is real data for the `idx` source and its test.
set -euo pipefail
packages=(dataset-fashion-mnist libjpeg-dev libopenblas-dev libopenmpi-dev libpng-dev openmpi-bin pkg-config zlib1g-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
