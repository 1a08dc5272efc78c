#!/usr/bin/env bash
# One command: install what is missing, build (release), and run the main job on the built-in model
# Models/tiny-license-gpt2 (a 4-layer GPT-2 trained on software licenses) with 2 pipeline stages:
# the examples of nnsight's "Multiple Token Generation" documentation (Examples/seed/) and the demo
# scripts (Examples/demo/), each as written, printing what it shows.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product nnsight
swift build -c release --product nnsight-worker
for script in Examples/seed/*.py Examples/demo/*.py; do
  echo "=== $script"
  .build/release/nnsight run "$script" --model Models/tiny-license-gpt2 --workers 2
done
