#!/usr/bin/env bash
# The main job: installs what it needs (into .venv), then runs every notebook in notebooks/
# in order with papermill, rebuilding figures/ and figures/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
S2S_EXTRAS=${S2S_EXTRAS:-notebooks,test} bash scripts/install.sh
. "${S2S_VENV:-.venv}/bin/activate"
python scripts/run_notebooks.py "$@"
