"""The ``s2s`` command line: train, sample, evaluate, predict.

Examples::

    s2s train --data data/s2s_open_v1.h5 --out runs/cpu --preset cpu
    s2s sample --model runs/cpu/model.pt --data data/s2s_open_v1.h5 --split test --limit 5 --out samples/
    s2s sample --model runs/cpu/model.pt --spectrum my_quartz.msa --shift onset --n-samples 16 --out samples/
    s2s evaluate --model runs/cpu/model.pt --data data/s2s_open_v1.h5 --split test --out results/
    s2s predict my_quartz.msa spectra_folder/ --n-samples 16 --out predictions/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from s2s.cli.data import SPLITS_HELP, add_fidelity_options, load_dataset, split_of
from s2s.cli.forward import add_best_of_options, add_train_forward_parser
from s2s.cli.predict import add_predict_parser
from s2s.config import PRESETS

PRESET_HELP = (
    "model/training preset: 'cpu_v3' (the CPU recipe that reads the spectrum: hidden 128, message 64, 4 layers, "
    "batch 64, FiLM spectrum encoder, x0 prediction; docs/model.md), 'cpu' (the same network with the paper's "
    "method), 'gpu_v3' (cpu_v3's method at 5 layers, hidden 512, message 128, batch 128: for a GPU), 'paper' "
    "(the paper's: 5 layers, hidden 1024, message 256, batch 1) or 'tiny' (tests)"
)


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-samples", type=int, default=1, help="environments generated per spectrum (default 1)")
    p.add_argument(
        "--n-atoms",
        default="target",
        help="atom count of each generated environment: 'target' (the paper's protocol: the target's count; "
        "needs --data), 'predict' (draw from the model's p(N | spectrum)), 'mode' (its most probable N), "
        "or an integer (default: target, or predict for --spectrum)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="reverse-diffusion steps (default: all T=1000, as in the paper)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="graphs sampled at once (default 64)")
    p.add_argument(
        "--device", default="cpu", help="torch device: cpu (default) or cuda (a GPU; same seeds, same noise)"
    )


def add_train_parser(sub) -> argparse.ArgumentParser:
    """``s2s train``: the diffusion model on a dataset file."""
    t = sub.add_parser(
        "train",
        help="train the diffusion model on a dataset file",
        description="Train (or resume training) on the train split of a dataset.",
    )
    t.add_argument(
        "--data", required=True, type=Path, help="dataset file (HDF5, s2s format; see docs/dataset_format.md)"
    )
    t.add_argument(
        "--out", required=True, type=Path, help="run directory: checkpoint.pt, model.pt (EMA weights), loss.csv"
    )
    t.add_argument("--preset", default="cpu", choices=list(PRESETS), help=PRESET_HELP)
    t.add_argument(
        "--split",
        default="train",
        help=f"which split to train on (default train): {SPLITS_HELP}",
    )
    add_fidelity_options(t)
    t.add_argument(
        "--fidelity-input",
        action="store_true",
        help="tell the model each training spectrum's fidelity (ModelConfig.fidelity_input: a flag on the excited "
        "atom, 1 first principles, 0 xTB); with --init-from a model without it, its input layer gets a zero "
        "column (docs/model.md)",
    )
    t.add_argument(
        "--reference-repeat",
        type=int,
        default=1,
        help="with --fidelity both: each first-principles record appears this many times in the training set "
        "(they are few beside the xTB records; default 1)",
    )
    t.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps in total")
    t.add_argument("--epochs", type=int, default=None, help="override the preset's number of epochs")
    t.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size (graphs per step)")
    t.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    t.add_argument("--seed", type=int, default=None, help="override the preset's seed (default 0)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    t.add_argument(
        "--no-resume", action="store_true", help="start afresh even if OUT/checkpoint.pt exists (it is overwritten)"
    )
    t.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue from another run's checkpoint.pt (same preset) on this training set, e.g. a grown "
        "dataset or your own spectra; --max-steps then counts its steps too",
    )
    t.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda (e.g. --preset paper on a GPU)")
    t.add_argument(
        "--cpu-minutes",
        type=float,
        default=None,
        help="stop once this run (all its resumed calls, this stage) has used this much process CPU time; "
        "writes model.pt; rerun with a larger value to continue. The preset's epochs still apply (cpu_v3: 300): "
        "give --epochs 1000000 to let the budget alone decide (run.json stop_reason says what ended a run)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--lr-decay-steps",
        type=int,
        default=None,
        help="cosine learning-rate decay over this many steps, starting at the --init-from checkpoint's step "
        "(or step 0), down to lr x --lr-min-factor; constant lr without it",
    )
    t.add_argument("--lr-min-factor", type=float, default=0.1, help="final lr / lr of the decay (default 0.1)")
    t.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        help="also keep the raw and EMA weights every N steps in OUT/snapshots/ (learning curves)",
    )
    return t


def add_sample_parser(sub) -> argparse.ArgumentParser:
    """``s2s sample``: environments for the spectra of a dataset split or a spectrum file."""
    s = sub.add_parser(
        "sample",
        help="generate environments for spectra",
        description=(
            "Generate environments conditioned on spectra from a dataset split or a spectrum file; "
            "writes extended XYZ (excited O first, per-atom shell)."
        ),
    )
    s.add_argument("--model", required=True, type=Path, help="model file (model.pt written by 's2s train')")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="dataset file whose spectra are used")
    src.add_argument(
        "--spectrum",
        type=Path,
        help="one spectrum file (two-column text/CSV in eV, EELS .msa, CASTEP .bands, GPAW JSON)",
    )
    s.add_argument("--split", default="test", help=f"dataset split to take spectra from (default test): {SPLITS_HELP}")
    s.add_argument("--limit", type=int, default=None, help="only the first LIMIT spectra of the split")
    add_fidelity_options(s)
    s.add_argument(
        "--shift",
        default="0",
        help=(
            "for --spectrum: energy shift in eV subtracted before gridding, or 'onset' to detect the edge onset "
            "(measured spectra in absolute loss energy)"
        ),
    )
    s.add_argument("--out", required=True, type=Path, help="output directory (one .xyz per spectrum)")
    _add_sampling_options(s)
    return s


def add_evaluate_parser(sub) -> argparse.ArgumentParser:
    """``s2s evaluate``: generate for a dataset split and score against the targets."""
    e = sub.add_parser(
        "evaluate",
        help="generate for a dataset split and score against the targets",
        description=(
            "Generate one environment per spectrum with the target's atom count (the paper's protocol), align "
            "(paper's and best alignment) and report per-shell RMSD, CN error and species accuracy."
        ),
    )
    e.add_argument("--model", required=True, type=Path, help="model file (model.pt)")
    e.add_argument("--data", required=True, type=Path, help="dataset file")
    e.add_argument("--split", default="test", help=f"split to evaluate (default test): {SPLITS_HELP}")
    e.add_argument("--limit", type=int, default=None, help="only the first LIMIT records")
    add_fidelity_options(e)
    e.add_argument(
        "--method",
        default="both",
        choices=["paper", "best", "both"],
        help="alignment: the paper's, ours (never worse), or both (default)",
    )
    e.add_argument(
        "--out", required=True, type=Path, help="output directory: metrics.json (summary), per_site.csv, generated.xyz"
    )
    _add_sampling_options(e)
    add_best_of_options(e)
    return e


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="s2s", description="Spectrum-to-structure: 3D local environments from O K-edge spectra."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_sample_parser(sub)
    add_evaluate_parser(sub)
    add_predict_parser(sub)
    add_train_forward_parser(sub)
    return ap


def _records(path: Path, split: str, limit: int | None, fidelity: str = "xtb", reference_store: Path | None = None):
    """The records of ``split`` of the dataset file ``path`` in ``fidelity`` (xtb, reference, both)."""
    ds = load_dataset(path, fidelity, reference_store)
    part = split_of(ds, split)
    recs = list(part)[: limit if limit is not None else None]
    if not recs:
        raise SystemExit(f"s2s: {path}: no records in split {split!r} (fidelity {fidelity})")
    return recs


def _counts(arg: str, recs):
    """-> (n_atoms list or None, natoms_mode)."""
    if arg == "target":
        if recs is None:
            raise SystemExit(
                "s2s: --n-atoms target needs --data (a spectrum file has no target); use predict, mode or an integer"
            )
        return [r.environment.n_atoms for r in recs], "sample"
    if arg in ("predict", "mode"):
        return None, "sample" if arg == "predict" else "argmax"
    try:
        n = int(arg)
    except ValueError:
        raise SystemExit(f"s2s: --n-atoms must be target, predict, mode or an integer, got {arg!r}") from None
    if n < 1:
        raise SystemExit("s2s: --n-atoms must be >= 1")
    return n, "sample"


def _flags(model, fidelities: list[str]) -> dict:
    """``{"fidelity": flags (M,)}`` of the spectra's fidelities for a model with ``fidelity_input``, else ``{}``
    (what a model without it is called with, as before)."""
    if not model.cfg.model.fidelity_input:
        return {}
    from s2s.site_record import fidelity_flag

    return {"fidelity": np.array([fidelity_flag(f) for f in fidelities], dtype=np.float32)}


def _generate(
    a: argparse.Namespace,
    model,
    spectra: np.ndarray,
    counts,
    mode: str,
    n_samples: int,
    buckets: bool = False,
    flags: dict | None = None,
) -> list:
    """:func:`s2s.model.sample.generate` with the sampling options of ``a`` (seed, steps, batch size, device;
    ``_add_sampling_options``): ``n_samples`` environments per spectrum (M, 200) of ``counts`` atoms;
    ``flags``: :func:`_flags` (the fidelity flags of a model that reads them)."""
    from s2s.model.sample import generate

    return generate(
        model,
        spectra,
        counts,
        n_samples=n_samples,
        seed=a.seed,
        n_steps=a.steps,
        batch_size=a.batch_size,
        natoms_mode=mode,
        progress=True,
        device=a.device,
        buckets=buckets,
        **(flags or {}),
    )


def cmd_train(a) -> int:
    from dataclasses import replace

    from s2s.config import get_preset
    from s2s.model.train import train

    cfg = get_preset(a.preset)
    if a.fidelity_input:
        cfg = replace(cfg, model=replace(cfg.model, fidelity_input=True))
    over = {
        k: v
        for k, v in dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, num_threads=a.threads).items()
        if v is not None
    }
    if a.lr_decay_steps:
        start = 0
        if a.init_from is not None and Path(a.init_from).is_file():
            from s2s.checkpoint_io import load_checkpoint, require_keys
            from s2s.model.train import TRAINING_CHECKPOINT

            state = load_checkpoint(a.init_from, TRAINING_CHECKPOINT)
            require_keys(state, a.init_from, ("step",), TRAINING_CHECKPOINT)
            start = int(state["step"])
        over.update(lr_decay_start=start, lr_decay_steps=a.lr_decay_steps, lr_min_factor=a.lr_min_factor)
    if over:
        cfg = replace(cfg, train=replace(cfg.train, **over))
    recs = _records(a.data, a.split, None, a.fidelity, a.reference_store)
    if a.reference_repeat < 1:
        raise SystemExit(f"s2s train: --reference-repeat must be >= 1, got {a.reference_repeat}")
    if a.reference_repeat > 1:
        if a.fidelity != "both":
            raise SystemExit(
                "s2s train: --reference-repeat needs --fidelity both (it weighs one fidelity against the other)"
            )
        recs = list(recs) + [r for r in recs if r.fidelity == "reference"] * (a.reference_repeat - 1)
    envs = [r.environment for r in recs]
    spectra = np.stack([r.spectrum for r in recs])
    flags = None
    if a.fidelity_input:
        from s2s.site_record import fidelity_flag

        flags = np.array([fidelity_flag(r.fidelity) for r in recs])
    print(
        f"training on {len(recs)} sites from {a.data} (split {a.split}, fidelity {a.fidelity}"
        f"{', fidelity as an input' if a.fidelity_input else ''}), preset {a.preset}, out {a.out}"
    )
    t0 = time.perf_counter()
    import hashlib

    info = {
        "dataset": str(a.data),
        "dataset_sha256": hashlib.sha256(Path(a.data).read_bytes()).hexdigest(),
        "split": a.split,
        "fidelity": a.fidelity,
        "n_reference_records": sum(r.fidelity == "reference" for r in recs) // a.reference_repeat,
        "reference_repeat": a.reference_repeat,
        "preset": a.preset,
        "args": {k: str(v) for k, v in vars(a).items() if not callable(v)},
    }
    try:
        res = train(
            cfg,
            envs,
            spectra,
            a.out,
            resume=not a.no_resume,
            max_steps=a.max_steps,
            progress=not a.quiet,
            info=info,
            init_from=a.init_from,
            device=a.device,
            snapshot_every=a.snapshot_every,
            cpu_budget=None if a.cpu_minutes is None else 60.0 * a.cpu_minutes,
            fidelity=flags,
        )
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"s2s train: {err}") from None
    print(
        f"done: {res.step} steps in {time.perf_counter() - t0:.1f} s, ended by {_stop_words(res.stop_reason, cfg, a)};"
        f" EMA model in {a.out / 'model.pt'}"
    )
    if a.cpu_minutes is not None and res.stop_reason in ("epochs", "max_steps"):
        print(
            f"s2s train: note: the run reached its {res.stop_reason.replace('_', ' ')} before --cpu-minutes"
            f" {a.cpu_minutes:g} was spent; to let the CPU budget decide, raise them (e.g. --epochs 1000000)",
            file=sys.stderr,
        )
    return 0


def _stop_words(reason: str, cfg, a) -> str:
    """What ended a training run, in words a user can act on (``TrainResult.stop_reason``)."""
    if reason == "epochs":
        source = "--epochs" if a.epochs is not None else f"preset {a.preset}"
        return f"the epoch limit ({cfg.train.epochs} epochs, {source})"
    if reason == "max_steps":
        return "the step limit (--max-steps)" if a.max_steps is not None else f"the step limit of preset {a.preset}"
    if reason == "cpu_budget":
        return f"the CPU budget (--cpu-minutes {a.cpu_minutes:g})"
    return reason


def cmd_sample(a) -> int:
    from s2s.io import write_extxyz
    from s2s.model.train import load_model
    from s2s.predict.report import check_out_dir

    model = load_model(a.model)
    check_out_dir(a.out)  # before any generation: a file or an unwritable folder is one line now, not later
    if a.spectrum is not None:
        from s2s.predict.inputs import load_inputs
        from s2s.predict.prepare import prepare

        # the one road of s2s predict (checks, onset alignment); 'onset' puts the edge onset at 0 eV
        shift = a.shift if a.shift in ("auto", "onset") else float(a.shift)
        items = load_inputs(a.spectrum)
        spectra = np.stack([prepare(it, 0.0, shift=shift).spectrum for it in items])
        names = [it.name for it in items]
        n_arg = "predict" if a.n_atoms == "target" else a.n_atoms
        counts, mode = _counts(n_arg, None)
        # a spectrum file: the flag of --fidelity (both reads as first principles, like s2s predict)
        fids = ["xtb" if a.fidelity == "xtb" else "reference"] * len(spectra)
    else:
        recs = _records(a.data, a.split, a.limit, a.fidelity, a.reference_store)
        spectra = np.stack([r.spectrum for r in recs])
        names = [f"{r.structure_id}__site{r.site_index}" for r in recs]
        counts, mode = _counts(a.n_atoms, recs)
        fids = [r.fidelity for r in recs]
    if isinstance(counts, int):
        counts = [counts] * len(spectra)
    out = _generate(a, model, spectra, counts, mode, a.n_samples, flags=_flags(model, fids))
    for name, envs in zip(names, out):
        write_extxyz(a.out / f"{name}.xyz", envs, [f"sample={k} source={name}" for k in range(len(envs))])
    print(f"wrote {len(names)} file(s) with {a.n_samples} sample(s) each to {a.out}")
    return 0


def cmd_evaluate(a) -> int:
    import csv
    import io as _io

    from s2s.files import atomic_write_text, write_json
    from s2s.geometry.metrics import evaluate_pair, summarize
    from s2s.io import write_extxyz
    from s2s.model.train import load_model
    from s2s.predict.report import check_out_dir

    if getattr(a, "best_of", None):
        from s2s.cli.forward import cmd_evaluate_best_of

        return cmd_evaluate_best_of(a)
    model = load_model(a.model)
    check_out_dir(a.out)  # before any generation
    recs = _records(a.data, a.split, a.limit, a.fidelity, a.reference_store)
    counts, mode = _counts(a.n_atoms, recs)
    if isinstance(counts, int):
        counts = [counts] * len(recs)
    spectra = np.stack([r.spectrum for r in recs])
    gen = _generate(a, model, spectra, counts, mode, 1, buckets=True, flags=_flags(model, [r.fidelity for r in recs]))
    methods = ["paper", "best"] if a.method == "both" else [a.method]
    rows, summary = [], {}
    for m in methods:
        res = [evaluate_pair(r.environment, g[0], method=m) for r, g in zip(recs, gen)]
        summary[m] = summarize(res)
        for r, d in zip(recs, res):
            rows.append({"structure_id": r.structure_id, "site_index": r.site_index, **d})
    write_json(
        a.out / "metrics.json",
        {
            "model": str(a.model),
            "data": str(a.data),
            "split": a.split,
            "fidelity": a.fidelity,
            "seed": a.seed,
            "steps": a.steps,
            "summary": summary,
        },
    )
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(a.out / "per_site.csv", buf.getvalue())
    write_extxyz(
        a.out / "generated.xyz", [g[0] for g in gen], [f"source={r.structure_id}__site{r.site_index}" for r in recs]
    )
    for m, s in summary.items():
        print(
            f"[{m} alignment] n={s['n']}  RMSD shell1 {s['rmsd_shell1']:.3f} shell2 {s['rmsd_shell2']:.3f} shell3 "
            f"{s['rmsd_shell3']:.3f} all {s['rmsd_all']:.3f} Å;  "
            f"CN error {s['cn_error_shell1_pct']:.2f} % / {s['cn_error_shell2_pct']:.2f} %;  species accuracy "
            f"{s['species_accuracy']:.3f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        from s2s.cli.forward import cmd_train_forward
        from s2s.cli.predict import cmd_predict

        return {
            "train": cmd_train,
            "sample": cmd_sample,
            "evaluate": cmd_evaluate,
            "predict": cmd_predict,
            "train-forward": cmd_train_forward,
        }[a.command](a)
    except (OSError, ValueError) as exc:  # bad input, unwritable output: one line, no traceback
        print(f"s2s {a.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
