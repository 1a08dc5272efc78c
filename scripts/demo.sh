#!/usr/bin/env bash
# One command: install what is missing, build (release) and run the main job on the built-in model:
# greedy generation with Models/tiny-license-gpt2, a 4-layer GPT-2 trained on software licenses.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product nnsight
.build/release/nnsight generate --model Models/tiny-license-gpt2 "$@"
