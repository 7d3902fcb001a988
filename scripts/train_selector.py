"""Train the confidence model that picks one of K samples (issue 32) on the labelled fit-split table.

    python scripts/train_selector.py                                  # compare the losses, train, calibrate, save
    python scripts/train_selector.py --compare-only                   # the cross-validated comparison alone

Input: ``runs/selection/fit_k8.npz`` (:mod:`scripts.selection_data`, fit-split sites only).  Every loss of
``--losses`` (with and without the spectrum as input) is cross-validated over ``--folds`` folds of whole
structures (:func:`s2s.selection.train.group_folds`); the table prints each one's out-of-fold pick (mean
paper-aligned 1st-shell and all-atom RMSD, species accuracy, validity) beside the first sample, the
composition medoid and the oracle of K.  The ``--loss`` model is then trained on all fit sites; its
"within 0.3 Å" probability is an isotonic map (:class:`s2s.selection.model.Isotonic`) fitted on the
out-of-fold scores of the same configuration (held-out structures, never validation), and the whole
selector is saved to ``--out`` (a few hundred KB).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default="runs/selection/fit_k8.npz")
    ap.add_argument("--out", default="models/selector_v1/selector.pt")
    ap.add_argument("--losses", default="pointwise,pairwise,listwise")
    ap.add_argument("--loss", default="listwise", help="the loss of the saved model")
    ap.add_argument("--spectrum", action="store_true", help="the saved model also reads the spectrum")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-only", action="store_true")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from s2s.files import file_sha256
    from s2s.selection.data import load_table
    from s2s.selection.model import Selector, SelectorConfig
    from s2s.selection.train import (
        composition_medoid,
        cross_validate,
        expected_calibration_error,
        group_folds,
        oracle_index,
        pick,
        pick_table,
        table_errors,
        table_inputs,
    )

    table = load_table(a.table)
    m, k = (int(v) for v in table["shape"])
    n_struct = len(set(table["structure_id"].tolist()))
    t0 = time.process_time()
    x = table_inputs(table)
    print(f"{m} fit sites of {n_struct} structures, K = {k}: features {time.process_time() - t0:.0f} s CPU", flush=True)
    folds = group_folds(table["structure_id"], a.folds, seed=a.seed)
    base = SelectorConfig(epochs=a.epochs, seed=a.seed)
    rows = {
        "first sample": pick_table(table, np.zeros(m, dtype=int)),
        "composition medoid": pick_table(table, composition_medoid(table)),
        "oracle of K": pick_table(table, oracle_index(table)),
    }
    oof = {}
    for loss in a.losses.split(","):
        for spec in (False, True):
            cfg = replace(base, loss=loss, spectrum=spec)
            t0 = time.process_time()
            s = cross_validate(x, table_errors(table, cfg), folds, cfg)
            name = f"{loss}{' + spectrum' if spec else ''}"
            oof[(loss, spec)] = s
            rows[name] = pick_table(table, pick(s))
            print(f"{name}: {time.process_time() - t0:.0f} s CPU", flush=True)
    keys = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity")
    print(f"\nout-of-fold picks ({a.folds} folds of structures), paper alignment")
    print(f"{'pick':28s}" + "".join(f"{c:>18s}" for c in keys))
    for name, r in rows.items():
        print(f"{name:28s}" + "".join(f"{r[c]:18.3f}" for c in keys))
    if a.compare_only:
        return 0

    cfg = replace(base, loss=a.loss, spectrum=a.spectrum)
    s_oof = oof.get((a.loss, a.spectrum))
    if s_oof is None:
        s_oof = cross_validate(x, table_errors(table, cfg), folds, cfg)
    t0 = time.process_time()
    sel = Selector.train(x, table_errors(table, cfg), cfg)
    sel.calibrate(s_oof.ravel(), table["rmsd_shell1"].ravel())
    r = table["rmsd_shell1"].ravel()
    ece = expected_calibration_error(sel.probability(s_oof.ravel()), np.isfinite(r) & (r <= cfg.threshold))
    sel.info = {
        "table": str(a.table),
        "table_sha256": file_sha256(a.table),
        "n_sites": m,
        "n_structures": n_struct,
        "k": k,
        "sampling": json.loads(str(table["info"])),
        "cross_validation": {"folds": a.folds, "picks": rows},
        "calibration": "isotonic on the out-of-fold scores of the fit sites (structure folds)",
        "ece_out_of_fold_in_sample": round(ece, 4),
        "training_cpu_s": round(time.process_time() - t0, 1),
        "config": asdict(cfg),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    sel.save(a.out)
    print(f"\nsaved {a.out} ({Path(a.out).stat().st_size / 1024:.0f} KB), loss {a.loss}, spectrum {a.spectrum}")
    print(f"calibration ECE on the fit sites' out-of-fold scores (what it was fitted on): {ece:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
