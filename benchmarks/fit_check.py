"""Under- or over-fitting? Generation quality on training vs test sites, split by SiO2 / other.

    python benchmarks/fit_check.py [--model MODEL (default: the shipped model)] [--data data/s2s_open_v1.h5] [--n 40]

Draws ``--n`` random sites (seed 0) of each split, generates one environment per spectrum with the
target's atom count (T = 1000 steps unless ``--steps``), and prints the paper's metrics (paper
alignment) per split and composition class.  If training sites come out as badly as test sites,
the model is under-trained rather than over-fitted.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.geometry.metrics import evaluate_pair, summarize
from s2s.model.sample import generate
from s2s.model.train import load_model
from s2s.resources import default_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_path("model_xtb"))
    ap.add_argument("--data", default=str(default_path("data")))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model)
    ds = Dataset.load(a.data)
    print(f"{'split':6s} {'class':6s} {'n':>3s} {'rmsd_shell1':>11s} {'rmsd_all':>8s} {'cn1_err%':>8s} {'species':>7s}")
    for name, recs in (("train", ds.train), ("test", ds.test)):
        sel = np.random.default_rng(0).choice(len(recs), size=min(a.n, len(recs)), replace=False)
        rs = [recs[int(i)] for i in sel]
        t0 = time.perf_counter()
        gen = generate(
            model, np.stack([r.spectrum for r in rs]), [r.environment.n_atoms for r in rs], seed=0, n_steps=a.steps
        )
        dt = time.perf_counter() - t0
        by = collections.defaultdict(list)
        for r, g in zip(rs, gen):
            by["SiO2" if abs(r.x - 2.0) < 1e-6 else "other"].append(evaluate_pair(r.environment, g[0]))
        for cls, rows in sorted(by.items()):
            s = summarize(rows)
            print(
                f"{name:6s} {cls:6s} {len(rows):3d} {s['rmsd_shell1']:11.3f} {s['rmsd_all']:8.3f} "
                f"{s['cn_error_shell1_pct']:8.2f} {s['species_accuracy']:7.3f}"
            )
        print(f"  ({dt / len(rs):.2f} s per structure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
