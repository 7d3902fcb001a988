#!/usr/bin/env bash
# The test command: installs what it needs (into .venv), lints with ruff, then runs the unit tests and the
# notebooks (small parameters, compared with committed references, re-executed by nbval) in one pytest run.
# Everything a test run writes goes to ignored folders (runs/ci/ for the notebooks and their
# figures); on a clean checkout the run checks that git status is still clean afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
S2S_EXTRAS=${S2S_EXTRAS:-notebooks,test,eels} bash scripts/install.sh
. "${S2S_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MPLBACKEND=Agg
clean_before=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ -z "$(git status --porcelain)" ]; then
  clean_before=1
fi
ruff check .                              # lint (pyproject.toml [tool.ruff]: line length 120, E/F/W/I)
rm -rf runs/ci
# papermill run into runs/ci/, its checked numbers compared with the committed notebooks/references/ (docs/testing.md);
# nbval then re-runs the notebooks and checks that the re-run reproduces the checked cells
references=0
python scripts/run_notebooks.py --small || references=$?
python -m pytest -q -p no:cacheprovider tests runs/ci/notebooks/*.ipynb --nbval-lax "$@"
if [ "$references" -ne 0 ]; then
  echo "test.sh: the small notebooks differ from notebooks/references/ (or failed to run); see above" >&2
  exit "$references"
fi
if [ -n "$clean_before" ] && [ -n "$(git status --porcelain)" ]; then
  echo "test.sh: the test run changed the working tree (it must write only to ignored folders):" >&2
  git status --porcelain >&2
  exit 1
fi
