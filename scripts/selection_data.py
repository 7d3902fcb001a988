"""Training (fit split) and comparison (validation split) samples for the confidence model, labelled.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/selection_data.py fit --sites 600 --until 13:45
    OMP_NUM_THREADS=1 nice -n 10 python scripts/selection_data.py val --seed 0
    OMP_NUM_THREADS=1 nice -n 10 python scripts/selection_data.py val --seed 1

K samples per site with the sampler of the best-of-k evaluation (:class:`s2s.model.cache.BestOfKSettings`:
DDIM 50 steps, eta 0, the target's atom count), labelled with their true errors (:func:`s2s.selection.data.
label_samples`: paper-aligned 1st-shell and all-atom RMSD, species match, validity) and their pairwise
paper-aligned RMSDs.

``fit``: fit-split sites only (:func:`s2s.splits.validation_split` of the training split; never validation or
test sites), ordered so that every prefix is structure-diverse (round robin over the structures in a seeded
order).  Sites go in chunks of ``--chunk``; each chunk is sampled (cached under ``--cache-dir``), labelled and
written to ``runs/selection/fit_chunks/``, so a killed run resumes where it stopped; after each chunk the
chunks are joined into ``runs/selection/fit_k8.npz``.  ``--until HH:MM`` (UTC) starts no chunk after that time.

``fit --half H`` (cross-fitting): only the sites of half ``H`` of the fit split (:func:`s2s.splits.fit_halves`),
to be sampled by a generator trained on the *other* half (``s2s train --split fit0`` / ``fit1``), so that the
confidence model learns from samples of sites the generator never saw (as DiffDock does); written to
``fit_half{H}_chunks_s{S}_k{K}/`` and ``fit_half{H}_k{K}.npz``.

``val``: all validation sites (every ``--stride``-th) in one call of :func:`s2s.model.cache.sample_k`
(the cache entry ``benchmarks/medoid_val.py --stride STRIDE --seed S`` uses), labelled into
``runs/selection/val_s{S}_k8[_strideSTRIDE].npz``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np


def diverse_order(structure_ids: list[str], seed: int = 0) -> list[int]:
    """Indices of the sites in round-robin order over the structures (structures in a seeded random order,
    the sites of one structure in a seeded random order): any prefix spreads over as many structures as it can."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[int]] = {}
    for i, s in enumerate(structure_ids):
        by.setdefault(s, []).append(i)
    keys = sorted(by)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    queues = [list(np.array(by[s])[rng.permutation(len(by[s]))]) for s in keys]
    out: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(int(q.pop(0)))
    return out


def past(until: str | None) -> bool:
    if not until:
        return False
    hh, mm = (int(v) for v in until.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return (now.hour, now.minute) >= (hh, mm)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("split", choices=("fit", "val"))
    ap.add_argument("--model", default=None, help="generator (default: the shipped model)")
    ap.add_argument("--data", default=None, help="dataset (default: the shipped one)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--sites", type=int, default=600, help="fit: number of fit-split sites (diverse order)")
    ap.add_argument("--chunk", type=int, default=16, help="fit: sites per chunk")
    ap.add_argument(
        "--half",
        type=int,
        choices=(0, 1),
        default=None,
        help="fit: only this half of the fit split (s2s.splits.fit_halves); --model then names a generator "
        "trained on the other half (cross-fitting)",
    )
    ap.add_argument("--until", default=None, help="fit: start no chunk after HH:MM UTC")
    ap.add_argument(
        "--stride", type=int, default=1, help="val: every STRIDE-th validation site (as benchmarks/medoid_val.py)"
    )
    ap.add_argument("--out", default="runs/selection")
    ap.add_argument("--cache-dir", default="runs/generated")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from s2s.dataset import Dataset
    from s2s.model.cache import BestOfKSettings
    from s2s.resources import resolve
    from s2s.selection.data import concat_tables, load_table, sample_table, save_table
    from s2s.splits import validation_split

    model = resolve("model_xtb", a.model)  # xTB spectra: the xTB generator (docs/selection.md numbers)
    ds = Dataset.load(resolve("data", a.data))
    fit, val = validation_split(ds)
    settings = BestOfKSettings(k=a.k, seed=a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def run(records, idx, path):
        t0 = time.time()
        save_table(path, sample_table(model, records, idx, settings, a.cache_dir))
        return time.time() - t0

    if a.split == "val":
        path = out / (f"val_s{a.seed}_k{a.k}.npz" if a.stride == 1 else f"val_s{a.seed}_k{a.k}_stride{a.stride}.npz")
        if path.exists():
            print(f"{path} exists")
            return 0
        idx = list(range(0, len(val), a.stride))
        wall = run(list(val), idx, path)
        print(f"{path}: {len(idx)} validation sites x {a.k} in {wall:.0f} s wall", flush=True)
        return 0

    if a.half is not None:
        from s2s.splits import fit_halves

        if a.model is None:
            raise SystemExit("selection_data.py: --half needs --model, a generator trained on the other half")
        fit = fit_halves(ds)[a.half]
    records = list(fit)
    order = diverse_order([r.structure_id for r in records], seed=0)[: a.sites]
    stem = "fit" if a.half is None else f"fit_half{a.half}"
    chunks = out / f"{stem}_chunks_s{a.seed}_k{a.k}"
    chunks.mkdir(exist_ok=True)
    for j in range(0, len(order), a.chunk):
        path = chunks / f"chunk_{j // a.chunk:04d}.npz"
        if path.exists():
            continue
        if past(a.until):
            print(f"past {a.until} UTC: stopping before chunk {j // a.chunk}", flush=True)
            break
        wall = run(records, order[j : j + a.chunk], path)
        done = sorted(chunks.glob("chunk_*.npz"))
        joined = concat_tables([load_table(p) for p in done])
        save_table(out / f"{stem}_k{a.k}.npz" if a.seed == 0 else out / f"{stem}_s{a.seed}_k{a.k}.npz", joined)
        n_struct = len(set(joined["structure_id"].tolist()))
        print(
            f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} chunk {j // a.chunk}: {len(order[j : j + a.chunk])} sites in "
            f"{wall:.0f} s wall; {int(joined['shape'][0])} sites of {n_struct} structures so far",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
