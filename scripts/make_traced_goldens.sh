#!/usr/bin/env bash
# Regenerates Tests/Fixtures/oracle-traced/*.json, oracle-api/*.json and oracle-workflows/*.json
# (or only the cases given as arguments, e.g. Tests/Fixtures/oracle-workflows/wf_edit.py): what the real nnsight 0.8.1 (transformers 5.2.0,
# torch 2.13.0+cpu) prints and saves for the traced-value and API cases. Cases named v50k_* run on
# the GPT-2-vocabulary model (tiny-gpt2-vocab50k), builtin_* on the built-in model
# (Models/tiny-license-gpt2), the others on tiny-gpt2. Needs the shared oracle
# harness beside the repository (../shared/oracle/oracle_run.py, or ORACLE_RUN).
# The vocab50k model itself was made with the shared tools/mk_model.py:
#   mk_model.py ../shared/gpt2-tokenizer OUT 3 32 4 64 7 0.2
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/oracle-venv.sh
harness=$(realpath "${ORACLE_RUN:-../shared/oracle/oracle_run.py}")
fixtures=$PWD/Tests/Fixtures
# builtin_* cases begin with the docs' preamble, LanguageModel("openai-community/gpt2", ...):
# a Hugging Face cache whose openai-community/gpt2 is the built-in model lets nnsight load it
# offline (as `nnsight run --model Models/tiny-license-gpt2` runs them).
hf_home=$(mktemp -d)
trap 'rm -rf "$hf_home"' EXIT
snapshot=$hf_home/hub/models--openai-community--gpt2/snapshots/builtin
mkdir -p "$snapshot" "$hf_home/hub/models--openai-community--gpt2/refs"
printf builtin > "$hf_home/hub/models--openai-community--gpt2/refs/main"
for file in "$PWD"/Models/tiny-license-gpt2/*; do ln -s "$file" "$snapshot/"; done
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("$fixtures"/oracle-traced/*.py "$fixtures"/oracle-api/*.py "$fixtures"/oracle-workflows/*.py)
for f in "${cases[@]}"; do
  f=$(realpath "$f")
  name=$(basename "$f" .py)
  model=$fixtures/models/tiny-gpt2
  case $name in v50k_*) model=$fixtures/models/tiny-gpt2-vocab50k ;; builtin_*) model=$PWD/Models/tiny-license-gpt2 ;; esac
  (cd "$(dirname "$harness")" && HF_HOME=$hf_home timeout 300 "$venv/bin/python" "$harness" "$model" "$f" "${f%.py}.json")
  echo "$name: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['error'])" "${f%.py}.json")"
done
