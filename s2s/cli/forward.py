"""The ``s2s train-forward`` subcommand (registered by :mod:`s2s.cli`); the work is in :mod:`s2s.forward.model`."""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import replace
from pathlib import Path

from s2s.cli.data import add_fidelity_options, library_for, load_dataset, split_of
from s2s.resources import default_path

#: The designs of :mod:`s2s.forward.model` (kept here so that building the parser does not import torch).
KINDS = ("soap", "distance")
#: Default forward model of ``s2s evaluate --best-of`` (the shipped one).
DEFAULT_FORWARD = default_path("forward")

DESCRIPTION = (
    "Train the forward model environment -> spectrum (200 points, unit area) on the train split of a dataset; "
    "the validation structures (hash of the structure id, seed 1, 10 %) choose the weights kept. Resumable: "
    "OUT/checkpoint.pt is picked up on a re-run. Writes OUT/model.pt (best validation weights), checkpoint.pt, "
    "loss.csv and run.json atomically. See docs/forward_model.md."
)


def add_train_forward_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-forward", help="train the forward model (environment -> spectrum)", description=DESCRIPTION
    )
    p.add_argument("--data", required=True, type=Path, help="dataset file (HDF5, s2s format)")
    p.add_argument("--out", required=True, type=Path, help="run folder (e.g. models/forward_v1)")
    add_fidelity_options(p)
    p.add_argument(
        "--kind", default="soap", choices=list(KINDS), help="design: SOAP + MLP (default) or the distance network"
    )
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps in total (default: the config's)")
    p.add_argument(
        "--cpu-seconds",
        type=float,
        default=None,
        help="stop after this much process CPU time in training (summed over resumes)",
    )
    p.add_argument(
        "--translator",
        action="store_true",
        help="train the translator instead (issue 29, recipe b): SOAP + the site's xTB spectrum -> its reference "
        "spectrum, on the training sites that have both (needs the reference store; s2s.forward.translate)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from this forward model's weights (model.pt of the same design), e.g. fine-tune the xTB "
        "forward model on first-principles spectra (--fidelity reference; docs/forward_model.md)",
    )
    p.add_argument("--hidden", type=int, default=None, help="MLP width")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoint.pt exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def default_config(kind: str):
    """The shipped settings per design (chosen on the validation split, docs/forward_model.md)."""
    from s2s.forward.model import ForwardConfig

    if kind == "soap":
        return ForwardConfig(kind="soap", hidden=128, n_layers=2, dropout=0.2, weight_decay=0.01, max_steps=3000)
    return ForwardConfig(kind="distance", hidden=256, n_layers=2, dropout=0.1, max_steps=2500)


def cmd_train_forward(a) -> int:
    import torch

    from s2s.forward.train import train_forward

    torch.set_num_threads(max(1, int(a.threads)))
    cfg = default_config(a.kind)
    over = {
        k: v for k, v in dict(hidden=a.hidden, lr=a.lr, seed=a.seed, max_steps=a.max_steps).items() if v is not None
    }
    if a.translator:
        if a.kind != "soap":
            raise SystemExit("s2s train-forward: --translator needs --kind soap")
        over["input_spectrum"] = True
        a.fidelity = "both"  # the pairs: the xTB and the reference record of each site
    if over:
        cfg = replace(cfg, **over)
    train = load_dataset(a.data, a.fidelity, a.reference_store).train
    if len(train) == 0:
        raise ValueError(f"{a.data}: no training records (fidelity {a.fidelity})")
    if a.translator:
        from s2s.forward.translate import translation_pairs

        envs, inputs, targets, ids = translation_pairs(train)
    else:
        envs, inputs, targets, ids = train.environments(), None, train.spectra(), [r.structure_id for r in train]
    info = {
        "dataset": str(a.data),
        "dataset_sha256": hashlib.sha256(Path(a.data).read_bytes()).hexdigest(),
        "split": "train",
        "fidelity": a.fidelity,
        "command": "s2s train-forward "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(a).items()
            if k not in ("func", "command") and v not in (None, False)
        ),
    }
    what = "translator (xTB -> reference) pairs" if a.translator else f"training sites (fidelity {a.fidelity})"
    print(f"train-forward: {len(envs)} {what} from {a.data}, kind {cfg.kind}, out {a.out}")
    init = None
    if a.init_from is not None:
        from s2s.forward.model import ForwardModel

        init = ForwardModel.load(a.init_from)
    t0 = time.process_time()
    res = train_forward(
        cfg,
        envs,
        targets,
        ids,
        a.out,
        resume=not a.no_resume,
        cpu_seconds=a.cpu_seconds,
        progress=not a.quiet,
        info=info,
        input_spectra=inputs,
        init_from=init,
    )
    print(
        f"done: {res.step} steps, best validation MSE {res.best_val_mse:.3e} at step {res.best_step}; "
        f"{res.cpu_seconds:.1f} s CPU in training ({time.process_time() - t0:.1f} s in all); model in "
        f"{a.out / 'model.pt'}"
    )
    return 0


# ----------------------------------------------------------------------------- s2s evaluate --best-of K
def add_best_of_options(e: argparse.ArgumentParser) -> None:
    """``--best-of K`` and ``--forward-model`` for the ``evaluate`` subcommand."""
    e.add_argument(
        "--best-of",
        type=int,
        default=None,
        metavar="K",
        help="draw K samples per site (DDIM, --steps default 50) and report four picks: the first sample, the one "
        "whose forward-model spectrum is closest to the input (best of K), the consensus (medoid: smallest mean "
        "aligned RMSD to the others) and the oracle (best true 1st-shell RMSD); writes OUT/best_of_k.json",
    )
    e.add_argument(
        "--cache-dir", type=Path, default=None, help="with --best-of: cache the K samples here (re-runs read them)"
    )
    e.add_argument(
        "--forward-model",
        type=Path,
        default=DEFAULT_FORWARD,
        help=f"forward model for --best-of (default {DEFAULT_FORWARD})",
    )


def cmd_evaluate_best_of(a) -> int:
    import torch

    from s2s.files import write_json
    from s2s.forward.model import ForwardModel
    from s2s.model.cache import BestOfKSettings
    from s2s.studies.best_of_k import METHODS, evaluate_best_of_k

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    if a.best_of < 1:
        raise ValueError("--best-of must be >= 1")
    if a.n_atoms != "target":
        raise ValueError("--best-of uses the targets' atom counts (the paper's protocol); drop --n-atoms")
    forward = ForwardModel.load(a.forward_model)
    ds = load_dataset(a.data, a.fidelity, a.reference_store)  # the template library reads the same fidelity
    test = list(split_of(ds, a.split))[: a.limit]
    if not test:
        raise ValueError(f"{a.data}: no records in split {a.split!r}")
    library = list(library_for(ds, test))  # never the queries' own structures (validation: the fit split)
    settings = BestOfKSettings(
        k=a.best_of, sampler="ddim", n_steps=50 if a.steps is None else a.steps, seed=a.seed, batch_size=a.batch_size
    )
    res = evaluate_best_of_k(a.model, forward, test, library, settings, progress=True, cache_dir=a.cache_dir)
    res.update(
        {
            "model": str(a.model),
            "forward_model": str(a.forward_model),
            "data": str(a.data),
            "split": a.split,
            "fidelity": a.fidelity,
        }
    )
    write_json(Path(a.out) / "best_of_k.json", res)
    keys = ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy", "validity", "template_win_rate")
    print(f"{'':14s}" + "".join(f"{k:>21s}" for k in keys))
    for m in METHODS:
        print(f"{m:14s}" + "".join(f"{res[m].get(k, float('nan')):21.3f}" for k in keys))
    print(
        f"n = {res['single']['n_test']} sites, K = {settings.k}, DDIM {settings.n_steps} steps; sampling "
        f"{res['sampling']['cpu_seconds']:.1f} s CPU; written {Path(a.out) / 'best_of_k.json'}"
    )
    return 0
