#!/usr/bin/env bash
# Regenerates Tests/Fixtures/oracle-traced/*.json and oracle-api/*.json: what the real nnsight 0.8.1 (transformers 5.2.0,
# torch 2.13.0+cpu) prints and saves for the traced-value cases. Cases named v50k_* run on the
# GPT-2-vocabulary model (tiny-gpt2-vocab50k), the others on tiny-gpt2. Needs the shared oracle
# harness beside the repository (../shared/oracle/oracle_run.py, or ORACLE_RUN).
# The vocab50k model itself was made with the shared tools/mk_model.py:
#   mk_model.py ../shared/gpt2-tokenizer OUT 3 32 4 64 7 0.2
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/oracle-venv.sh
harness=$(realpath "${ORACLE_RUN:-../shared/oracle/oracle_run.py}")
fixtures=$PWD/Tests/Fixtures
for f in "$fixtures"/oracle-traced/*.py "$fixtures"/oracle-api/*.py; do
  name=$(basename "$f" .py)
  model=$fixtures/models/tiny-gpt2
  case $name in v50k_*) model=$fixtures/models/tiny-gpt2-vocab50k ;; esac
  (cd "$(dirname "$harness")" && timeout 300 "$venv/bin/python" "$harness" "$model" "$f" "${f%.py}.json")
  echo "$name: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['error'])" "${f%.py}.json")"
done
