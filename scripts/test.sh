#!/usr/bin/env bash
# The test command: installs what it needs (into .venv), then runs the unit tests and the
# notebooks (small parameters, executed and checked by nbval) in one pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
S2S_EXTRAS=${S2S_EXTRAS:-notebooks,test} bash scripts/install.sh
. "${S2S_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MPLBACKEND=Agg
python scripts/run_notebooks.py --small   # papermill run; nbval then re-runs and compares the checked cells
python -m pytest -q -p no:cacheprovider tests notebooks/*.ipynb --nbval-lax "$@"
