#!/usr/bin/env bash
# Regenerates Examples/seed/*.json: what the real nnsight 0.8.1 (transformers 5.2.0, torch 2.13.0+cpu)
# prints and saves for the seed examples on the built-in model. Examples 05-07 cannot run as written
# under nnsight 0.8.1 (it hangs, lacks next(), skips a line), so their goldens come from the
# nnsight-compatible variants in scripts/seed-oracle/, which compute the same thing.
# Needs the project's shared/oracle/oracle_run.py harness beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/oracle-venv.sh
harness=${ORACLE_RUN:-../shared/oracle/oracle_run.py}
for f in Examples/seed/0[1-4]*.py scripts/seed-oracle/*.py; do
  name=$(basename "$f" .py)
  timeout 300 "$venv/bin/python" "$harness" Models/tiny-license-gpt2 "$f" "Examples/seed/$name.json"
  echo "$name: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(repr(d['stdout']), d['error'])" "Examples/seed/$name.json")"
done
