"""Training recipes compared at equal CPU time, judged on a validation split carved from training.

    python benchmarks/ablation.py train cpu_v3 --cpu-minutes 35          # -> runs/ablation/cpu_v3/
    python benchmarks/ablation.py evaluate runs/ablation/cpu_v3 [--cpu-minutes 35] [--weights ema|raw]
    python benchmarks/ablation.py evaluate runs/ablation/cpu_v3 --sampler ancestral --n-steps 50 --noise-scale 0.5
    python benchmarks/ablation.py sampling runs/ablation/cpu_v3 --settings ddim-50 ancestral-50@0.7 --seeds 0 1 2
    python benchmarks/ablation.py report runs/ablation/* [--table-dir DIR] [--figure docs/figures/validation_curve]
    python benchmarks/ablation.py curve runs/ablation/cpu runs/ablation/cpu_v3 --minutes 10 20 40 --n 96
    python benchmarks/ablation.py refine runs/ablation/cpu_v3 --t0 50 100 200 300     # SDEdit from templates

``train`` fits a recipe (a preset of :mod:`s2s.config`, or a named variant below) on the training
split minus the validation structures (:func:`s2s.splits.validation_split`, 10 % of the training
structures by hash, seed 1), one thread, until its process CPU time reaches the budget, keeping
the raw and EMA weights every ``--snapshot-every`` steps (resumable: rerun with a larger budget).
``evaluate`` takes the snapshot nearest below a CPU time (default: the last) and measures it on the
validation split: DDIM-50 generation with the target's atom count (1st-shell RMSD, species accuracy,
validity, paper alignment) and the denoising probe's conditioning gap (:mod:`s2s.model.probe`).
``report`` prints the table (variant, CPU minutes, steps, metrics) and can write it to ``DIR/ablation.md``
(no doc is edited).
``curve`` prints, for several runs in one go, training steps per CPU second and the validation
metrics of the snapshots at the given CPU minutes (the learning curve against CPU time).
The test split is never touched here.  The logic lives in :mod:`s2s.studies.ablation`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from s2s.files import atomic_write_text
from s2s.model.diffusion import SAMPLERS
from s2s.resources import default_path
from s2s.studies import ablation as A


def cmd_train(a: argparse.Namespace) -> int:
    out = Path(a.out or f"runs/ablation/{a.variant}")
    r = A.train_variant(
        a.variant, a.data, a.cpu_minutes, out, a.snapshot_every, progress=not a.quiet, init_from=a.init_from
    )
    last = r.history[-1]
    branch = json.loads((out / "run.json").read_text()).get("continued_from") or {}  # also when a branch resumes
    steps = r.step - int(branch.get("step", 0))
    print(
        f"{a.variant}: step {r.step}, {steps} steps in {last['cpu_seconds'] / 60:.1f} CPU min"
        + (" of this branch" if branch else "")
        + f", {steps / max(last['cpu_seconds'], 1e-9):.2f} steps per CPU second"
    )
    return 0


def cmd_refine(a: argparse.Namespace) -> int:
    head, tables = A.refine_table(Path(a.run), a.data, a.t0, a.cpu_minutes, a.weights)
    print(head)
    for line in A.format_refine(tables):
        print(line)
    return 0


def cmd_curve(a: argparse.Namespace) -> int:
    print(A.CURVE_HEADER)
    for run in a.runs:
        for minutes in a.minutes:
            try:
                r = A.evaluate_run(Path(run), a.data, minutes, a.weights, 0.0, a.n)
            except ValueError as err:
                print(f"{Path(run).name:18s} {minutes:7.1f}  ({err})")
                continue
            print(A.format_curve_row(r))
    return 0


def cmd_evaluate(a: argparse.Namespace) -> dict:
    out = A.evaluate_run(
        Path(a.run), a.data, a.cpu_minutes, a.weights, a.guidance, a.n, a.sampler, a.n_steps, a.noise_scale
    )
    print(json.dumps(out))
    return out


def cmd_sampling(a: argparse.Namespace) -> int:
    res = A.sampler_sweep(Path(a.run), a.data, a.settings, a.seeds, a.cpu_minutes, a.weights)
    print(
        f"{res['variant']} {res['snapshot']} ({res['weights']}), {res['n_val']} validation sites, seeds {res['seeds']}"
    )
    print(A.format_sweep(res))
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    rows = A.collect_evaluations(a.runs)
    md = A.table_markdown(rows)
    print(md)
    if a.table_dir:  # no doc is edited: the table is printed, and written to DIR/ablation.md for pasting
        path = Path(a.table_dir) / "ablation.md"
        atomic_write_text(path, md)
        print(f"ablation table -> {path}")
    if a.figure:
        from s2s.plots import plot_validation_curve, save_figure

        fig = plot_validation_curve(rows, title="Validation split (DDIM-50, EMA weights)")
        print("wrote", ", ".join(str(p) for p in save_figure(fig, a.figure)))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_path("data")))
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("variant", choices=sorted(A.variants()))
    t.add_argument("--cpu-minutes", type=float, required=True)
    t.add_argument("--out", default=None)
    t.add_argument("--snapshot-every", type=int, default=500)
    t.add_argument(
        "--init-from", default=None, help="branch from this checkpoint.pt (CPU minutes count from the branch point)"
    )
    t.add_argument("--quiet", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("run")
    e.add_argument("--cpu-minutes", type=float, default=None)
    e.add_argument("--weights", choices=("ema", "raw"), default="ema")
    e.add_argument("--guidance", type=float, default=0.0)
    e.add_argument("--n", type=int, default=None, help="validation sites (default: all)")
    e.add_argument("--sampler", choices=list(SAMPLERS), default="ddim")
    e.add_argument("--n-steps", type=int, default=50)
    e.add_argument("--noise-scale", type=float, default=1.0, help="ancestral only: per-step noise factor (< 1: cooler)")
    w = sub.add_parser("sampling", help="sampler settings of one snapshot over several seeds (validation)")
    w.add_argument("run")
    w.add_argument("--settings", nargs="+", default=["ddim-50", "ancestral-50"], help="NAME-STEPS[@NOISE_SCALE]")
    w.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    w.add_argument("--cpu-minutes", type=float, default=None)
    w.add_argument("--weights", choices=("ema", "raw"), default="ema")
    c = sub.add_parser("curve")
    c.add_argument("runs", nargs="+")
    c.add_argument("--minutes", type=float, nargs="+", required=True)
    c.add_argument("--weights", choices=("ema", "raw"), default="ema")
    c.add_argument("--n", type=int, default=96)
    f = sub.add_parser("refine")
    f.add_argument("run")
    f.add_argument("--cpu-minutes", type=float, default=None)
    f.add_argument("--weights", choices=("ema", "raw"), default="ema")
    f.add_argument("--t0", type=int, nargs="+", default=[50, 100, 200, 300])
    r = sub.add_parser("report")
    r.add_argument("runs", nargs="+")
    r.add_argument("--table-dir", default=None, help="also write the table to DIR/ablation.md (no doc is edited)")
    r.add_argument("--figure", default=None, help="also draw the validation curves (EMA) to this path (.png + .svg)")
    a = ap.parse_args(argv)
    res = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "sampling": cmd_sampling,
        "report": cmd_report,
        "curve": cmd_curve,
        "refine": cmd_refine,
    }[a.cmd](a)
    return 0 if isinstance(res, dict) else res


if __name__ == "__main__":
    sys.exit(main())
