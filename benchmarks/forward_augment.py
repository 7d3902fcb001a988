"""Pilot: does coordinate-noise augmentation make the forward model a better judge of generated samples?

    python benchmarks/forward_augment.py                     # v8, K = 8, sigma 0 / 0.03 / 0.06 / 0.1 Å (~2 min)
    python benchmarks/forward_augment.py --model models/s2s_open_v6/model.pt --sigmas 0 0.05

Generated environments are slightly off the manifold of real ones (bond lengths ~0.025 Å off,
docs/model.md), where a forward model trained on real environments extrapolates.  For each sigma a
SOAP forward model (``models/forward_v1``'s config) is trained on the training split plus ``--copies``
copies of the fit-split environments with every atom but the excited O moved by Gaussian noise of
sigma Å (spectra unchanged; validation structures never jittered), and keeps, among the K cached DDIM-50
samples of each validation site, the plausible sample whose predicted spectrum is closest to the
input (:func:`s2s.forward.selfconsistent.score_candidates`).  Prints the validation MSE of the forward
model and the mean paper-aligned 1st-shell RMSD of its pick.  Writes nothing.  Result (eighth
session, v8): no gain (docs/model.md).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.environment import Environment
from s2s.evaluation.ablation import load_split
from s2s.evaluation.best_of_k import BestOfKSettings, sample_k
from s2s.evaluation.metrics import evaluate_pair
from s2s.forward.model import ForwardConfig, validation_mask
from s2s.forward.selfconsistent import score_candidates
from s2s.forward.train import train_forward
from s2s.resources import default_path


def jitter(env: Environment, sigma: float, rng: np.random.Generator) -> Environment:
    """A copy of ``env`` with every atom but the excited O moved by N(0, sigma^2) Å per coordinate."""
    c = env.coords.copy()
    c[1:] += rng.normal(0.0, sigma, c[1:].shape)
    return Environment(species=env.species, coords=c, shell=env.shell, meta=env.meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/s2s_open_v8/model.pt")
    ap.add_argument("--forward-config", default=str(default_path("forward").parent / "run.json"))
    ap.add_argument("--data", default="data/s2s_open_v1.h5")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.03, 0.06, 0.1])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cache-dir", default="runs/generated")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    train = Dataset.load(a.data).train
    envs, spectra, ids = train.environments(), train.spectra(), [r.structure_id for r in train.records]
    base = ForwardConfig.from_dict(json.loads(open(a.forward_config).read())["config"])
    _, val = load_split(a.data)
    targets = val.environments()
    vs = val.spectra()
    samples, _ = sample_k(a.model, vs, [e.n_atoms for e in targets], BestOfKSettings(k=a.k), cache_dir=a.cache_dir)
    r1 = np.array([[evaluate_pair(t, g)["rmsd_shell1"] for g in row] for t, row in zip(targets, samples)])
    print(
        f"{len(targets)} validation sites, K = {a.k}: first sample {np.nanmean(r1[:, 0]):.3f} Å, "
        f"oracle {np.nanmean(np.nanmin(r1, 1)):.3f} Å"
    )
    fit_idx = np.flatnonzero(~validation_mask(ids, base.val_fraction, base.val_seed))
    for sigma in a.sigmas:
        t0 = time.process_time()
        rng = np.random.default_rng(0)
        n_aug = a.copies if sigma > 0 else 0
        aug_envs = envs + [jitter(envs[i], sigma, rng) for _ in range(n_aug) for i in fit_idx]
        aug_spec = np.concatenate([spectra] + [spectra[fit_idx]] * n_aug)
        cfg = replace(base, max_steps=base.max_steps * (2 if n_aug else 1))
        fm = train_forward(cfg, aug_envs, aug_spec, ids + [ids[i] for i in fit_idx] * n_aug, None, progress=False).model
        picks = [
            score_candidates(fm, vs[i], row, [str(j) for j in range(len(row))]).order[0]
            for i, row in enumerate(samples)
        ]
        mse = float(((fm.predict(targets) - vs) ** 2).mean())
        print(
            f"sigma {sigma:.2f} Å x {n_aug} copies, {cfg.max_steps} steps: validation MSE {mse:.3e}; forward pick "
            f"1st shell {np.nanmean(r1[np.arange(len(r1)), picks]):.3f} Å ({time.process_time() - t0:.0f} s CPU)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
