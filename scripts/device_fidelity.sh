#!/usr/bin/env bash
# Issue 29's prepared GPU run (docs/fidelity.md, "A GPU run, prepared"): a generator of GPU size (preset gpu_v3:
# cpu_v3's method, 5 layers, hidden 512) trained from scratch on both fidelities (the `joint` recipe of
# benchmarks/fidelity_recipes.py: the fit split's xTB spectra and every GPAW spectrum of data/reference_sites),
# one seed, for a fixed budget.  The weights come back; the evaluation runs here, on the CPU, paired with v9.
#
# Here, before the call (the device tool carries at most 64 MiB of working tree):
#     bash scripts/device_tree.sh wheels      # pymatgen-core & co. as cp312 wheels into .whl/ (ignored)
#     bash scripts/device_tree.sh slim        # remove the tracked files the run does not read; prints the size
# The call (device `run`, carry [".whl"], timeout_s 600):
#     bash scripts/device_fidelity.sh
# After it, here:
#     bash scripts/device_tree.sh restore     # the removed files back (git checkout)
#     bash scripts/device_fidelity.sh collect FILES_AT   # model.pt from its parts -> runs/device/gpu_joint_s1
#     python benchmarks/fidelity_recipes.py evaluate runs/device/gpu_joint_s1 --fidelity reference --seeds 0 ... 11
#     (the same with --fidelity xtb), then `report ... --paired-to runs/fidelity/r10/v9`
#
# Stages: `check` (the GPU is seen; tests/test_device.py, whose CUDA test runs only there), `train`, or both
# (the default).  Settings through the environment: S2S_DEVICE_MINUTES (process CPU minutes of training,
# default 6; on a GPU one thread drives it, so about wall minutes), S2S_DEVICE_PRESET (gpu_v3),
# S2S_DEVICE (cuda), S2S_DEVICE_SEED (1, v9's training seed).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
RUN=runs/device/gpu_joint_s${S2S_DEVICE_SEED:-1}

if [ "$STAGE" = collect ]; then  # here, after the call: join the parts into the run folder
    FROM=${2:?usage: device_fidelity.sh collect FILES_AT}
    mkdir -p "$RUN"
    cat "$FROM"/model.pt.part* > "$RUN/model.pt.tmp" && mv "$RUN/model.pt.tmp" "$RUN/model.pt"
    for f in loss.csv run.json train.log check.log; do [ -f "$FROM/$f" ] && cp "$FROM/$f" "$RUN/"; done
    ${PYTHON:-.venv/bin/python} -c "from s2s.model.train import load_model; import sys; m = load_model(sys.argv[1]); \
print(sys.argv[1], sum(p.numel() for p in m.parameters()), 'parameters')" "$RUN/model.pt"
    exit 0
fi

PY=${PYTHON:-python3}
DEVICE=${S2S_DEVICE:-cuda}
OUTDIR=${OUT:-runs/device/out}
mkdir -p "$OUTDIR"
if compgen -G ".whl/*.whl" > /dev/null; then  # the device image has torch and h5py, not pymatgen
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/s2s-site .whl/*.whl
    export PYTHONPATH=/tmp/s2s-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

if [ "$STAGE" = check ] || [ "$STAGE" = all ]; then
    { nvidia-smi -L || true
      $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
      PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $PY -m pytest -q -p no:cacheprovider tests/test_device.py
    } 2>&1 | tee "$OUTDIR/check.log"
fi

if [ "$STAGE" = train ] || [ "$STAGE" = all ]; then
    MIN=${S2S_DEVICE_MINUTES:-6}
    TRAIN=(benchmarks/fidelity_recipes.py train joint --init-from none --preset "${S2S_DEVICE_PRESET:-gpu_v3}"
        --device "$DEVICE" --seed "${S2S_DEVICE_SEED:-1}" --out "$RUN" --cpu-minutes)
    # The budget is process CPU time. Should the thread that drives the GPU sleep while it waits, CPU time would
    # lag the wall clock: a wall limit (default the budget + 2 min) interrupts the run, which saves its checkpoint
    # on SIGINT, and the run resumed with a spent budget makes one step and writes model.pt.
    WALL=${S2S_DEVICE_WALL:-$(awk -v m="$MIN" 'BEGIN { print int(60 * m + 120) }')}
    timeout -s INT "$WALL" "$PY" "${TRAIN[@]}" "$MIN" 2>&1 | tee "$OUTDIR/train.log" || true
    if [ ! -f "$RUN/model.pt" ]; then
        echo "no model.pt after ${WALL} s: one more step from the checkpoint writes it" | tee -a "$OUTDIR/train.log"
        "$PY" "${TRAIN[@]}" 0.001 2>&1 | tee -a "$OUTDIR/train.log"
    fi
    # model.pt (27 MiB for gpu_v3) in parts under the 16 MiB a returned file may have; loss curve and summary
    split -b 15M -d "$RUN/model.pt" "$OUTDIR/model.pt.part"
    cp "$RUN/loss.csv" "$RUN/run.json" "$OUTDIR/"
    ls -la "$OUTDIR"
fi
