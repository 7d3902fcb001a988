"""Train the confidence model that picks one of K samples (issue 32) on the labelled fit-split table.

    python scripts/train_selector.py                       # compare the configurations, train the chosen one, save
    python scripts/train_selector.py --compare-only        # the cross-validated comparison alone
    python scripts/train_selector.py --grid pointwise:compact:0:1 --out runs/selection/pointwise.pt

Input: ``runs/selection/fit_k8.npz`` (``scripts/selection_data.py``, fit-split sites only) and the forward
model's score of every sample (kept beside the table).  Each configuration of ``--grid`` (``loss:features:
spectrum:forward``, :class:`s2s.selection.model.SelectorConfig`) is cross-validated over ``--folds`` folds of
whole structures (:func:`s2s.selection.train.group_folds`); the table prints its out-of-fold pick (mean
paper-aligned 1st-shell and all-atom RMSD, species accuracy, validity), alone and restricted to the commonest
composition, beside the first sample, the composition medoid and the oracle of K.  The configuration with the
smallest out-of-fold 1st-shell RMSD whose species accuracy and validity are no worse than the composition
medoid's is then trained on all fit sites (``--save-best-of-each DIR``: also the best of each loss); its
"within 0.3 Å" probability is an isotonic map (:class:`s2s.selection.model.Isotonic`) fitted on its out-of-fold
scores (held-out structures, never validation), and the selector is saved to ``--out`` (a few hundred KB).
Deterministic for ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

DEFAULT_GRID = (
    "pointwise:all:0:1,pairwise:all:0:1,listwise:all:0:1,"
    "pointwise:compact:0:1,pairwise:compact:0:1,listwise:compact:0:1,"
    "pointwise:all:0:0,pairwise:all:0:0,pointwise:all:1:1"
)


def parse(spec: str, base):
    loss, features, spectrum, forward = spec.split(":")
    return replace(base, loss=loss, features=features, spectrum=bool(int(spectrum)), forward=bool(int(forward)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default="runs/selection/fit_k8.npz")
    ap.add_argument("--forward", default=None, help="forward model (default: the shipped one)")
    ap.add_argument("--out", default="models/selector_v1/selector.pt")
    ap.add_argument("--grid", default=DEFAULT_GRID, help="loss:features:spectrum:forward,...")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the sites (default: 60 x min(1, 300 / sites), at least 15)",
    )
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--n-models", type=int, default=3, help="ensemble size of every model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-only", action="store_true")
    ap.add_argument("--save-best-of-each", default=None, metavar="DIR", help="also save the best model of each loss")
    ap.add_argument("--json", default=None, help="write the comparison here")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from s2s.files import file_sha256
    from s2s.forward.model import ForwardModel
    from s2s.resources import resolve
    from s2s.selection.data import load_table
    from s2s.selection.model import Selector, SelectorConfig
    from s2s.selection.train import (
        cached_forward_scores,
        composition_medoid,
        cross_validate,
        expected_calibration_error,
        group_folds,
        oracle_index,
        pick,
        pick_in_commonest_composition,
        pick_table,
        table_errors,
        table_inputs,
    )

    table = load_table(a.table)
    m, k = (int(v) for v in table["shape"])
    n_struct = len(set(table["structure_id"].tolist()))
    t0 = time.process_time()
    cached_forward_scores(a.table, table, ForwardModel.load(resolve("forward", a.forward)))
    x = table_inputs(table)
    print(f"{m} fit sites of {n_struct} structures, K = {k}: inputs {time.process_time() - t0:.0f} s CPU", flush=True)
    folds = group_folds(table["structure_id"], a.folds, seed=a.seed)
    epochs = a.epochs or max(15, round(60 * min(1.0, 300 / m)))
    base = SelectorConfig(
        epochs=epochs, seed=a.seed, hidden=a.hidden, dropout=0.3, weight_decay=0.1, n_models=a.n_models
    )
    rows = {
        "first sample": pick_table(table, np.zeros(m, dtype=int)),
        "composition medoid": pick_table(table, composition_medoid(table)),
        "oracle of K": pick_table(table, oracle_index(table)),
    }
    grid = [parse(g, base) for g in a.grid.split(",")]
    oof = []
    for spec, cfg in zip(a.grid.split(","), grid):
        t0 = time.process_time()
        s = cross_validate(x, table_errors(table, cfg), folds, cfg)
        oof.append(s)
        rows[spec] = pick_table(table, pick(s))
        rows[f"{spec}, commonest comp."] = pick_table(table, pick_in_commonest_composition(s, x))
        print(f"{spec}: {time.process_time() - t0:.0f} s CPU", flush=True)
    keys = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity")
    print(f"\nout-of-fold picks on the fit sites ({a.folds} folds of structures), paper alignment")
    print(f"{'pick (loss:features:spectrum:forward)':44s}" + "".join(f"{c:>18s}" for c in keys))
    for name, r in rows.items():
        print(f"{name:44s}" + "".join(f"{r[c]:18.3f}" for c in keys))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"sites": m, "structures": n_struct, "picks": rows}, indent=1))
    if a.compare_only:
        return 0

    specs = a.grid.split(",")
    medoid = rows["composition medoid"]
    ok = [
        i
        for i, sp in enumerate(specs)
        if rows[sp]["species_accuracy"] >= medoid["species_accuracy"] and rows[sp]["validity"] >= medoid["validity"]
    ]
    best = min(ok or range(len(specs)), key=lambda i: rows[specs[i]]["rmsd_shell1"])
    print(
        f"\nchosen by cross-validation: {specs[best]} (smallest out-of-fold 1st-shell RMSD among the configurations "
        f"whose species accuracy and validity are no worse than the composition medoid's: {len(ok)} of {len(specs)})"
    )
    saves = {a.out: best}
    if a.save_best_of_each:
        for loss in dict.fromkeys(c.loss for c in grid):
            i = min((j for j, c in enumerate(grid) if c.loss == loss), key=lambda j: rows[specs[j]]["rmsd_shell1"])
            saves[str(Path(a.save_best_of_each) / f"{loss}.pt")] = i
    for path, i in saves.items():
        cfg, s_oof = grid[i], oof[i]
        t0 = time.process_time()
        sel = Selector.train(x, table_errors(table, cfg), cfg)
        sel.calibrate(s_oof.ravel(), table["rmsd_shell1"].ravel())
        r = table["rmsd_shell1"].ravel()
        ece = expected_calibration_error(sel.probability(s_oof.ravel()), np.isfinite(r) & (r <= cfg.threshold))
        sel.info = {
            "name": specs[i],
            "table": str(a.table),
            "table_sha256": file_sha256(a.table),
            "n_sites": m,
            "n_structures": n_struct,
            "k": k,
            "sampling": json.loads(str(table["info"])),
            "cross_validation": {"folds": a.folds, "picks": rows, "chosen": specs[best]},
            "calibration": "isotonic on the out-of-fold scores of the fit sites (folds of whole structures)",
            "ece_out_of_fold_in_sample": round(ece, 4),
            "training_cpu_s": round(time.process_time() - t0, 1),
            "config": asdict(cfg),
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        sel.save(path)
        print(
            f"saved {path} ({Path(path).stat().st_size / 1024:.0f} KB): {specs[i]}; calibration ECE in-sample {ece:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
