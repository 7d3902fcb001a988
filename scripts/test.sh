#!/usr/bin/env bash
# The test command: installs what it needs (into .venv), then runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
S2S_EXTRAS=${S2S_EXTRAS:-test} bash scripts/install.sh
. "${S2S_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m pytest -q -p no:cacheprovider "$@"
