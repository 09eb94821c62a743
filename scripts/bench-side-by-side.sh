#!/usr/bin/env bash
# Runs each benchmark workload with PyTorch's reference (torch_ref.py) and with
# `pipeline bench`, one process per workload, one program after the other, and prints both
# JSON lines per workload. Usage:
#   scripts/bench-side-by-side.sh PATH/TO/torch_ref.py [workload ...]   (default: gemm w1 w2 w3 w4)
set -euo pipefail
ref=${1:?usage: $0 PATH/TO/torch_ref.py [workload ...]}
shift
workloads=("${@:-gemm w1 w2 w3 w4}")
[ $# -gt 0 ] && workloads=("$@") || workloads=(gemm w1 w2 w3 w4)
bin=.build/release/pipeline
[ -x "$bin" ] || swift build -c release --product pipeline
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  cores: $(nproc)"
for w in "${workloads[@]}"; do
  echo "== $w"
  echo "torch:     $(python3 "$ref" "$w" | tail -n 1)"
  echo "distillery: $("$bin" bench --json --workload "$w" | tail -n 1)"
done
