"""Which forward model picks best among generated samples?  Variants trained here, judged on validation.

    python benchmarks/forward_pick.py                                   # the shipped recipe and noise augmentation
    python benchmarks/forward_pick.py --variants base "hidden=512,n_layers=3,max_steps=20000"
    python benchmarks/forward_pick.py --variants "sigma=0.03,copies=4" --model models/s2s_open_v6/model.pt

A variant is ``base`` (``models/forward_v1``'s config) or comma-separated overrides of it: any
:class:`s2s.forward.model.ForwardConfig` field (``hidden``, ``n_layers``, ``max_steps``, ``dropout``,
``soap_n_max``, ``kind``, ...) and ``sigma`` / ``copies``: coordinate-noise augmentation, ``copies``
copies of the fit-split environments with every atom but the excited O moved by Gaussian noise of
``sigma`` Å (spectra unchanged; validation structures never jittered).  Each variant is trained on the
training split (validation structures choose the weights kept, as ``s2s train-forward``), then

* its validation MSE (clean validation environments);
* its twin discrimination (:func:`s2s.studies.identifiability.twin_discrimination`: a validation
  site against fit-split twins 0.001-0.002 / 0.002-0.004 / 0.004-0.008 eV^-1 apart; 0.5 is chance);
* its pick among the K cached DDIM-50 samples of each validation site (``--model``): the plausible
  sample whose predicted spectrum is closest to the input
  (:func:`s2s.forward.selfconsistent.score_candidates`), scored by the paper-aligned 1st-shell RMSD,
  species accuracy and validity.

Writes nothing (``--json`` writes the table where asked).  Results: docs/model.md, eighth session.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.environment import Environment
from s2s.forward.model import ForwardConfig, validation_mask
from s2s.forward.selfconsistent import score_candidates
from s2s.forward.train import train_forward
from s2s.geometry.metrics import evaluate_pair
from s2s.model.cache import BestOfKSettings, sample_k
from s2s.resources import default_path
from s2s.studies.ablation import load_split
from s2s.studies.identifiability import twin_discrimination

TWIN_EDGES = (0.001, 0.002, 0.004, 0.008)


def jitter(env: Environment, sigma: float, rng: np.random.Generator) -> Environment:
    """A copy of ``env`` with every atom but the excited O moved by N(0, sigma^2) Å per coordinate."""
    c = env.coords.copy()
    c[1:] += rng.normal(0.0, sigma, c[1:].shape)
    return Environment(species=env.species, coords=c, shell=env.shell, meta=env.meta)


def parse_variant(text: str, base: ForwardConfig) -> tuple[ForwardConfig, float, int]:
    """(config, sigma Å, copies) of a variant string ("base" or "field=value,...")."""
    if text == "base":
        return base, 0.0, 0
    types = {f.name: type(getattr(base, f.name)) for f in fields(ForwardConfig)}
    over, sigma, copies = {}, 0.0, 0
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "sigma":
            sigma = float(value)
        elif key == "copies":
            copies = int(value)
        elif key in types and types[key] is bool:
            over[key] = value.strip().lower() in ("1", "true", "yes")
        elif key in types:
            over[key] = value if types[key] is str else types[key](float(value) if types[key] is int else value)
        else:
            raise SystemExit(f"variant {text!r}: unknown field {key!r} (ForwardConfig fields, sigma, copies)")
    return replace(base, **over), sigma, copies


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["base", "sigma=0.03,copies=4,max_steps=6000"])
    ap.add_argument("--model", default=str(default_path("model_xtb")))
    ap.add_argument("--forward-config", default=str(default_path("forward").parent / "run.json"))
    ap.add_argument("--data", default=str(default_path("data")))
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--cache-dir", default="runs/generated")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    train = Dataset.load(a.data).train
    envs, spectra, ids = train.environments(), train.spectra(), [r.structure_id for r in train.records]
    base = ForwardConfig.from_dict(json.loads(Path(a.forward_config).read_text())["config"])
    fit, val = load_split(a.data)
    targets, vs = val.environments(), val.spectra()
    fit_envs, fs = fit.environments(), fit.spectra()
    vid, fid = [r.structure_id for r in val.records], [r.structure_id for r in fit.records]
    samples, _ = sample_k(a.model, vs, [e.n_atoms for e in targets], BestOfKSettings(k=a.k), cache_dir=a.cache_dir)
    ev = [[evaluate_pair(t, g) for g in row] for t, row in zip(targets, samples)]
    r1 = np.array([[e["rmsd_shell1"] for e in row] for row in ev])
    print(
        f"{len(targets)} validation sites, K = {a.k} samples of {a.model}: first sample {np.nanmean(r1[:, 0]):.3f} Å, "
        f"oracle {np.nanmean(np.nanmin(r1, 1)):.3f} Å\n"
    )
    fit_idx = np.flatnonzero(~validation_mask(ids, base.val_fraction, base.val_seed))
    table = []
    print(
        "| variant | steps | CPU s | validation MSE | twins 0.001-0.002 | 0.002-0.004 | 0.004-0.008 "
        "| pick: 1st shell (Å) | species | validity |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for text in a.variants:
        cfg, sigma, copies = parse_variant(text, base)
        copies = copies if sigma > 0 else 0
        t0 = time.process_time()
        rng = np.random.default_rng(0)
        aug_envs = envs + [jitter(envs[i], sigma, rng) for _ in range(copies) for i in fit_idx]
        aug_spec = np.concatenate([spectra] + [spectra[fit_idx]] * copies)
        aug_ids = ids + [ids[i] for i in fit_idx] * copies
        fm = train_forward(cfg, aug_envs, aug_spec, aug_ids, None, progress=False).model
        cpu = time.process_time() - t0
        pv = fm.predict(targets)
        disc = twin_discrimination(vs, pv, vid, fs, fm.predict(fit_envs), fid, TWIN_EDGES)
        picks = [
            score_candidates(fm, vs[i], row, [str(j) for j in range(len(row))]).order[0]
            for i, row in enumerate(samples)
        ]
        chosen = [ev[i][int(j)] for i, j in enumerate(picks)]
        row = {
            "variant": text,
            "steps": cfg.max_steps,
            "cpu_seconds": round(cpu, 1),
            "val_mse": float(((pv - vs) ** 2).mean()),
            "twin_accuracy": [b["accuracy"] for b in disc],
            "pick_rmsd_shell1": float(np.nanmean([c["rmsd_shell1"] for c in chosen])),
            "pick_species": float(np.mean([c["species_match"] for c in chosen])),
            "pick_validity": float(np.mean([c["valid"] for c in chosen])),
        }
        table.append(row)
        print(
            f"| {text} | {row['steps']} | {cpu:.0f} | {row['val_mse']:.3e} | "
            + " | ".join(f"{x:.2f}" for x in row["twin_accuracy"])
            + f" | {row['pick_rmsd_shell1']:.3f} | {row['pick_species']:.3f} | {row['pick_validity']:.3f} |",
            flush=True,
        )
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=1))
        tmp.replace(a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
