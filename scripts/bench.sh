#!/usr/bin/env bash
# Engine benchmark side by side with PyTorch + transformers, in one run (this machine is noisy:
# compare figures taken together). PyTorch lives in a throwaway venv, never in the product.
#   bash scripts/bench.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
rounds=${1:-3}
swift build -c release --product nnsight >/dev/null
venv=${BENCH_VENV:-/tmp/nnsight-bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.13.0+cpu" "transformers==5.2.0"
fi
for i in $(seq "$rounds"); do
  echo "swift   $(.build/release/nnsight bench --json --threads 2)"
  echo "pytorch $("$venv/bin/python" scripts/bench_pytorch.py --threads 2)"
done
