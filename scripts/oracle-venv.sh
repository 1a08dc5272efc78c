# Sourced by the golden scripts: a Python venv with the pinned oracle stack (nnsight 0.8.1,
# transformers 5.2.0, torch 2.13.0 CPU) at $ORACLE_VENV, made once; sets $venv.
venv=${ORACLE_VENV:-/tmp/nnsight-oracle-venv}
# accelerate only lets LanguageModel(..., device_map="auto") load (the seed page's setup line).
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import nnsight, accelerate' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.13.0" "transformers==5.2.0" "nnsight==0.8.1" "accelerate==1.16.0"
fi
