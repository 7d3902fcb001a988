"""The forward model for first-principles spectra (``models/forward_ref_v1``): how it was chosen, and how it picks.

    python benchmarks/forward_reference.py choice              # from scratch vs fine-tuned, 3 seeds (validation MSE)
    python benchmarks/forward_reference.py pick --seeds 0,1,2,3  # forward pick among 8 samples (validation)

``choice``: forward models trained on the GPAW spectra of the training split's sites (``--fidelity reference``
of :func:`s2s.simulate.reference_sites.load_fidelity`; the validation structures of
:func:`s2s.forward.model.validation_mask` choose each run's best step and are the score), from scratch and
fine-tuned from ``forward_v1`` (:func:`s2s.forward.train.train_forward` ``init_from``), beside the training mean
spectrum and ``forward_v1`` unchanged.  Prints validation MSE, mean and s.d. over ``--train-seeds``.

``pick``: K = 8 DDIM-50 samples of the generator (``--model``, default the shipped one) per GPAW validation
spectrum (the target's atom count; :func:`s2s.model.cache.sample_k`, cached under ``--cache-dir``), and the
sample each forward model ranks first (:func:`s2s.forward.selfconsistent.score_candidates`: plausible
geometries first, then spectrum MSE), beside the first sample, the medoid, the composition medoid and the
oracle (:func:`s2s.studies.best_of_k.select`); paper-aligned means over the seeds pooled, 95 % intervals and
paired differences resampling the validation structures (:mod:`s2s.studies.bootstrap`).  ``--json`` writes
the numbers.  The validation sites are those of the store as it stands (the build adds sites over time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity")
VARIANTS = (  # name, fine-tuned from forward_v1?, ForwardConfig overrides
    ("from scratch, 3000 steps, lr 1e-3", False, {}),
    ("from scratch, 1000 steps, lr 1e-3", False, {"max_steps": 1000}),
    ("fine-tuned, 3000 steps, lr 1e-3", True, {}),
    ("fine-tuned, 1000 steps, lr 3e-4", True, {"lr": 3e-4, "max_steps": 1000}),
    ("fine-tuned, 1000 steps, lr 1e-4", True, {"lr": 1e-4, "max_steps": 1000}),
    ("fine-tuned, 2000 steps, lr 1e-4", True, {"lr": 1e-4, "max_steps": 2000, "eval_every": 50}),
    ("fine-tuned, 2000 steps, lr 5e-5", True, {"lr": 5e-5, "max_steps": 2000, "eval_every": 50}),
)


def choice(a, ds) -> dict:
    from s2s.cli.forward import default_config
    from s2s.forward.model import ForwardModel, validation_mask
    from s2s.forward.train import train_forward

    train = ds.train
    envs, y, ids = train.environments(), train.spectra(), [r.structure_id for r in train]
    val = validation_mask(ids)
    print(f"{len(envs)} training-split sites with a GPAW spectrum; {int(val.sum())} validation", flush=True)
    xtb = ForwardModel.load(a.xtb_forward)
    rows = {
        "training mean spectrum": [float(np.mean((y[~val].mean(0) - y[val]) ** 2))],
        "forward_v1 unchanged (xTB-trained)": [
            float(np.mean((xtb.predict([envs[i] for i in np.flatnonzero(val)]) - y[val]) ** 2))
        ],
    }
    cpu: dict[str, list[float]] = {}
    for name, tuned, over in VARIANTS:
        for seed in a.train_seeds:
            cfg = replace(default_config("soap"), seed=seed, **over)
            t0 = time.process_time()
            res = train_forward(cfg, envs, y, ids, None, progress=False, init_from=xtb if tuned else None)
            rows.setdefault(name, []).append(res.best_val_mse)
            cpu.setdefault(name, []).append(time.process_time() - t0)
        print(
            f"{name:40s} {np.mean(rows[name]):.3e} +- {np.std(rows[name]):.1e}  ({np.mean(cpu[name]):.0f} CPU s)",
            flush=True,
        )
    return {"n_train": int((~val).sum()), "n_val": int(val.sum()), "val_mse": rows}


def pick(a, ds) -> dict:
    from s2s.cli.data import split_of
    from s2s.forward.model import ForwardModel
    from s2s.forward.selfconsistent import score_candidates
    from s2s.model.cache import BestOfKSettings, sample_k
    from s2s.resources import resolve
    from s2s.studies.best_of_k import select
    from s2s.studies.bootstrap import ROW_KEYS, difference_intervals, summary_intervals
    from s2s.studies.evaluate import metric_array

    model = resolve("model", a.model)
    val = list(split_of(ds, "val"))
    targets = [r.environment for r in val]
    spectra = np.stack([r.spectrum for r in val]).astype(np.float64)
    xtb, ref = ForwardModel.load(a.xtb_forward), ForwardModel.load(a.reference_forward)
    names = (
        "first sample",
        "forward pick, xTB model",
        "forward pick, first-principles model",
        "medoid",
        "composition medoid",
        "oracle of 8",
    )
    rows: dict[str, list] = {n: [] for n in names}
    groups: list[str] = []
    for seed in a.seeds:
        samples, _ = sample_k(
            model,
            spectra,
            [t.n_atoms for t in targets],
            BestOfKSettings(k=8, seed=seed),
            cache_dir=a.cache_dir,
            progress=False,
        )
        sel = select(samples, spectra, xtb, targets)
        ref_pick = [
            int(score_candidates(ref, spectra[i], row, [f"site {i} sample {j}" for j in range(len(row))]).order[0])
            for i, row in enumerate(samples)
        ]
        picks = (
            sel["single"],
            sel["best_of_k"],
            ref_pick,
            sel["medoid_of_k"],
            sel["composition_medoid_of_k"],
            sel["oracle_of_k"],
        )
        for n, p in zip(names, picks):
            rows[n] += [{"index": len(groups) + i, "paper": sel["rows"][i][int(j)]} for i, j in enumerate(p)]
        groups += [r.structure_id for r in val]
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{n} {np.nanmean(metric_array(rows[n][-len(val) :], 'paper', 'rmsd_shell1')):.3f}" for n in names
            ),
            flush=True,
        )
    out = {
        "model": str(model),
        "n_sites": len(val),
        "n_structures": len(set(groups)),
        "seeds": list(a.seeds),
        "pooled": {},
        "difference": {},
    }
    print(f"\nGPAW validation spectra: {len(val)} sites of {len(set(groups))} structures; seeds {a.seeds} pooled")
    print(f"{'pick':40s} {'1st shell [95 % CI]':>24s} {'all':>7s} {'species':>8s} {'validity':>9s}")
    for n, r in rows.items():
        means = {k: float(np.nanmean(metric_array(r, "paper", ROW_KEYS.get(k, k)))) for k in KEYS}
        ci = summary_intervals(r, groups, "paper", digits=3)
        out["pooled"][n] = {**means, "ci95": ci}
        print(
            f"{n:40s} {means['rmsd_shell1']:7.3f} {str(ci['rmsd_shell1']):>16s} {means['rmsd_all']:7.3f} "
            f"{means['species_accuracy']:8.3f} {means['validity']:9.3f}"
        )
    for x, y in ((names[2], names[1]), (names[2], names[4]), (names[1], names[4])):
        d = difference_intervals(rows[x], rows[y], groups, digits=3)
        out["difference"][f"{x} - {y}"] = d
        print(f"{x} - {y}: {d}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("choice", "pick"))
    ap.add_argument("--data", type=Path, default=None, help="dataset (default: the shipped one)")
    ap.add_argument("--reference-store", type=Path, default=None, help="GPAW spectra (default: data/reference_sites)")
    ap.add_argument("--xtb-forward", type=Path, default=ROOT / "models" / "forward_v1" / "model.pt")
    ap.add_argument("--reference-forward", type=Path, default=ROOT / "models" / "forward_ref_v1" / "model.pt")
    ap.add_argument("--model", type=Path, default=None, help="pick: the generator (default: the shipped one)")
    ap.add_argument("--train-seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1])
    ap.add_argument("--cache-dir", type=Path, default=None, help="pick: sample cache (default: runs/generated)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from s2s.resources import resolve
    from s2s.simulate.reference_sites import load_fidelity

    ds = load_fidelity(resolve("data", a.data), "reference", a.reference_store)
    out = choice(a, ds) if a.what == "choice" else pick(a, ds)
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
