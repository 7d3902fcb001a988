#!/usr/bin/env bash
# Create .venv (if needed) and install s2s with the extras named in $S2S_EXTRAS (default: test).
# A CPU-only torch is preferred: the local CPU wheel if pip can find one (torch==2.13.0+cpu),
# else the index given in $S2S_TORCH_INDEX (e.g. PyTorch's CPU wheel index), else plain PyPI torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${S2S_VENV:-.venv}
EXTRAS=${S2S_EXTRAS:-test}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  if pip install -q --only-binary :all: "torch==2.13.0+cpu" 2>/dev/null; then
    echo "install: torch 2.13.0+cpu (local CPU wheel)"
  elif [ -n "${S2S_TORCH_INDEX:-}" ] && pip install -q torch --index-url "$S2S_TORCH_INDEX"; then
    echo "install: torch from $S2S_TORCH_INDEX"
  else
    pip install -q "torch>=2.2"
  fi
fi
stamp="$VENV/.s2s-installed-$EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  pip install -q -e ".[$EXTRAS]"
  touch "$stamp"
fi
# JupyterLab (notebooks extra): a double click on a .py opens it as a notebook (jupytext) in this
# environment, so `jupyter lab notebooks/` shows notebooks/NN_*.py as notebooks (jupyter/s2s.json).
if python -c "import jupyterlab" 2>/dev/null; then
  settings="$(python -c "import sys; print(sys.prefix)")/share/jupyter/lab/settings/overrides.d"
  mkdir -p "$settings"
  cp jupyter/s2s.json "$settings/s2s.json"
fi
python -c "import s2s, torch; print(f's2s {s2s.__version__}, torch {torch.__version__}')"
