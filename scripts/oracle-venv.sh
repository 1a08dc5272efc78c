# Sourced by the golden scripts: a Python venv with the pinned oracle stack (nnsight 0.8.1,
# transformers 5.2.0, torch 2.13.0 CPU) at $ORACLE_VENV, made once; sets $venv.
venv=${ORACLE_VENV:-/tmp/nnsight-oracle-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import nnsight' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.13.0" "transformers==5.2.0" "nnsight==0.8.1"
fi
