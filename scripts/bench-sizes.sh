#!/usr/bin/env bash
# GPT-2's real sizes end to end, side by side with PyTorch in one run (this machine is noisy:
# compare figures taken together): for each shape, the cluster on 1, 2 and 4 worker processes
# (decode ms/token, tokens/s with 8 traces in flight, peak RSS per worker, load time), then
# PyTorch + transformers in one process on the same shape (decode, batch-8 tokens/s, peak RSS,
# from_pretrained time). Random weights; checkpoints are written once under /tmp (xl: 6.2 GB).
#   bash scripts/bench-sizes.sh [SHAPES...]        # default: small medium large xl
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(small medium large xl)
swift build -c release --product nnsight >/dev/null
swift build -c release --product nnsight-worker >/dev/null
venv=${BENCH_VENV:-/tmp/nnsight-bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.13.0+cpu" "transformers==5.2.0"
fi
echo "cpu: $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
for shape in "${shapes[@]}"; do
  for workers in 1 2 4; do
    echo "swift   $shape workers=$workers $(.build/release/nnsight bench --shape "$shape" --workers "$workers" --traces 8 --json)"
  done
  echo "pytorch $shape $(TQDM_DISABLE=1 "$venv/bin/python" scripts/bench_pytorch.py --shape "$shape" --threads 2 --steps 32 --repeats 3 --load)"
done
