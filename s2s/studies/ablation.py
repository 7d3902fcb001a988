"""Training recipes compared at equal CPU time, judged on a validation split carved from training.

A *run* folder holds a training run (``checkpoint.pt``, ``snapshots/step_*.pt`` with the raw and
EMA weights and the process CPU seconds at each snapshot) and its evaluations
(``eval_<snapshot>_<weights>[_w<guidance>][_n<K>].json``).  The validation split is
:func:`s2s.splits.validation_split` (10 % of the training structures by hash, seed 1); the
fit split is the rest; the test split is never touched.  ``benchmarks/ablation.py`` is the
command line.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from s2s.checkpoint_io import load_checkpoint, require_keys
from s2s.config import S2SConfig, get_preset, replace
from s2s.dataset import Dataset
from s2s.files import atomic_write_text
from s2s.geometry.metrics import evaluate_pair
from s2s.model import S2SModel
from s2s.model.diffusion import SAMPLERS
from s2s.model.probe import conditioning_gap
from s2s.model.refine import refine_templates
from s2s.model.sample import generate
from s2s.model.train import train
from s2s.retrieval.neighbours import nearest_by_mse
from s2s.splits import validation_split
from s2s.studies.evaluate import summary_table

#: The columns of the report table, in order.
#: What a training snapshot is, for messages.
SNAPSHOT_FILE = "a training snapshot (snapshots/step_*.pt written by 's2s train --snapshot-every')"
COLUMNS = (
    "variant",
    "weights",
    "guidance",
    "cpu_minutes",
    "step",
    "rmsd_shell1",
    "rmsd_all",
    "cn_error_shell1_pct",
    "species_accuracy",
    "validity",
    "probe_gap_t200",
    "probe_gap_t500",
)


def variants() -> dict[str, S2SConfig]:
    """Recipes by name: the presets, and single changes on top of ``cpu_v3`` (``_nosc``: without self-conditioning)."""
    v3 = get_preset("cpu_v3")
    return {
        "cpu": get_preset("cpu"),
        "cpu_v3": v3,
        "cpu_v3_nosc": replace(v3, model=replace(v3.model, self_condition=False)),
        "cpu_v3_add": replace(v3, model=replace(v3.model, spectrum_encoder="add")),
        "cpu_v3_eps": replace(v3, diffusion=replace(v3.diffusion, parameterization="eps", loss_weight="min_snr")),
        # single factors of the loss: min-SNR-5 weighting instead of clamp(SNR, 0.05, 1.5); uniform t instead of band
        "cpu_v3_minsnr": replace(v3, diffusion=replace(v3.diffusion, loss_weight="min_snr")),
        "cpu_v3_uniform": replace(v3, diffusion=replace(v3.diffusion, t_sampling="uniform")),
        # width at equal CPU time (issue 14): twice the hidden and message widths, same depth
        "cpu_v3_wide": replace(v3, model=replace(v3.model, hidden_dim=256, message_dim=128)),
        # depth at equal CPU time: 6 EGNN layers instead of 4, same widths
        "cpu_v3_deep": replace(v3, model=replace(v3.model, n_layers=6)),
        # the generator (issue 14's alternative): OT-coupled noise on the paper's schedule, and flow matching
        # (OT coupling on the straight path alpha_t = 1 - t/T, sampled by DDIM = Euler steps of the flow ODE)
        "cpu_v3_ot": replace(v3, diffusion=replace(v3.diffusion, coupling="ot")),
        "cpu_v3_flow": replace(v3, diffusion=replace(v3.diffusion, coupling="ot", schedule="linear")),
    }


def load_split(data: str | Path) -> tuple[Dataset, Dataset]:
    """(fit, validation) of the training split of the dataset file ``data``."""
    ds = Dataset.load(data)
    fit, val = validation_split(ds)
    return fit, val


def train_variant(
    variant: str,
    data: str | Path,
    cpu_minutes: float,
    out: Path,
    snapshot_every: int = 500,
    progress: bool = True,
    init_from: str | Path | None = None,
):
    """Train recipe ``variant`` on the fit split, one thread, until the process CPU time reaches
    ``cpu_minutes``; snapshots every ``snapshot_every`` steps into ``out`` (resumable).
    ``init_from``: branch from another run's ``checkpoint.pt`` (same network; the training-only diffusion
    settings may differ, :data:`s2s.model.train.TRAINING_ONLY_DIFFUSION_FIELDS`); ``cpu_minutes`` then
    counts this branch's CPU time only.

    Returns the :func:`s2s.model.train.train` result (``step``, ``history`` with ``cpu_seconds``).
    """
    cfg = variants()[variant]
    cfg = replace(cfg, train=replace(cfg.train, num_threads=1, epochs=10**6))
    fit, _ = load_split(data)
    info = {"variant": variant, "dataset": data, "fit_sites": len(fit)}
    return train(
        cfg,
        [r.environment for r in fit],
        fit.spectra(),
        out,
        cpu_budget=cpu_minutes * 60.0,
        snapshot_every=snapshot_every,
        info=info,
        progress=progress,
        init_from=init_from,
    )


def pick_snapshot(run: Path, cpu_minutes: float | None) -> Path:
    """The last snapshot of ``run`` taken within ``cpu_minutes`` of process CPU time (+1 s; None: the last)."""
    snaps = sorted((run / "snapshots").glob("step_*.pt"))
    if not snaps:
        raise FileNotFoundError(f"{run}/snapshots: no snapshots (train with --snapshot-every)")
    if cpu_minutes is None:
        return snaps[-1]
    best = None
    for p in snaps:
        if float(load_checkpoint(p, SNAPSHOT_FILE).get("cpu_seconds", math.inf)) <= cpu_minutes * 60.0 + 1.0:
            best = p
    if best is None:
        raise ValueError(f"{run}: no snapshot within {cpu_minutes} CPU minutes")
    return best


def load_snapshot(path: Path, weights: str) -> tuple[S2SModel, dict]:
    """(model in eval mode with the ``"raw"`` or EMA weights, the snapshot's state dict)."""
    state = load_checkpoint(path, SNAPSHOT_FILE)
    require_keys(state, path, ("config", "n_max", "model" if weights == "raw" else "ema"), SNAPSHOT_FILE)
    model = S2SModel(S2SConfig.from_dict(state["config"]), n_max=state["n_max"])
    model.load_state_dict(state["model" if weights == "raw" else "ema"])
    model.eval()
    return model, state


def _validation_inputs(run: Path, data: str | Path, cpu_minutes: float | None, weights: str, n: int | None = None):
    """(snapshot path, model, snapshot state, validation records, target environments, spectra (M, 200))
    for evaluating ``run`` at ``cpu_minutes``; ``n``: a seeded random subset of that many sites.
    Sets torch to one thread (the evaluations are compared in CPU time)."""
    torch.set_num_threads(1)
    snap = pick_snapshot(run, cpu_minutes)
    model, state = load_snapshot(snap, weights)
    _, val = load_split(data)
    recs = list(val)
    if n:
        recs = [recs[i] for i in np.random.default_rng(0).choice(len(recs), size=min(n, len(recs)), replace=False)]
    return snap, model, state, recs, [r.environment for r in recs], np.stack([r.spectrum for r in recs])


def _score_one_sample(model, targets, spectra, seed: int = 0, **sampling) -> dict:
    """One sample per validation site (the target's atom count; ``sampling``: the options of
    :func:`s2s.model.sample.generate`), paper alignment: the :func:`summary_table` metrics plus ``validity``."""
    gen = generate(model, spectra, [e.n_atoms for e in targets], seed=seed, **sampling)
    rows = [{"paper": evaluate_pair(t, g[0])} for t, g in zip(targets, gen)]
    table = summary_table(rows, "paper")
    return {**table, "validity": float(np.mean([r["paper"]["valid"] for r in rows]))}


def evaluate_run(
    run: Path,
    data: str | Path,
    cpu_minutes: float | None = None,
    weights: str = "ema",
    guidance: float = 0.0,
    n: int | None = None,
    sampler: str = "ddim",
    n_steps: int = 50,
    noise_scale: float = 1.0,
) -> dict:
    """Measure a snapshot of ``run`` on the validation split and write ``eval_*.json`` into the run.

    DDIM-50 generation (or ``sampler`` with ``n_steps``; ``noise_scale`` for the ancestral sampler,
    :func:`s2s.model.diffusion.sample`) with the target's atom count, seed 0, paper alignment: 1st-shell and all-atom
    RMSD (Å), 1st-shell CN error (%), species accuracy, validity; the denoising probe's conditioning
    gap at t = 200 and 500 (:func:`s2s.model.probe.conditioning_gap`); generation CPU seconds.
    ``n``: a seeded random subset of that many validation sites (the file name gets ``_n<K>``).
    """
    run = Path(run)
    snap, model, state, recs, targets, spectra = _validation_inputs(run, data, cpu_minutes, weights, n)
    t0 = time.process_time()
    table = _score_one_sample(
        model, targets, spectra, sampler=sampler, n_steps=n_steps, guidance=guidance, noise_scale=noise_scale
    )
    t_gen = time.process_time() - t0
    gap = conditioning_gap(model, targets, spectra, ts=(200, 500), seed=0)
    out = {
        "variant": run.name,
        "snapshot": snap.name,
        "weights": weights,
        "guidance": guidance,
        "sampler": f"{sampler}-{n_steps}",
        "noise_scale": noise_scale,
        "step": int(state["step"]),
        "cpu_minutes": round(state["cpu_seconds"] / 60.0, 1),
        "n_val": len(recs),
        **{k: table[k] for k in ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy")},
        "validity": table["validity"],
        **{f"probe_gap_t{t}": g for t, g in gap.items()},
        "generation_cpu_seconds": round(t_gen, 1),
    }
    name = (
        f"eval_{snap.stem}_{weights}"
        + (f"_w{guidance:g}" if guidance else "")
        + ("" if (sampler, n_steps) == ("ddim", 50) else f"_{sampler}{n_steps}")
        + (f"_ns{noise_scale:g}" if noise_scale != 1.0 else "")
        + (f"_n{len(recs)}" if n else "")
        + ".json"
    )
    atomic_write_text(run / name, json.dumps(out, indent=1))
    return out


def refine_table(
    run: Path, data: str | Path, t0s: list[int], cpu_minutes: float | None = None, weights: str = "ema"
) -> tuple[str, dict[str, dict]]:
    """Retrieval-guided refinement (:mod:`s2s.model.refine`, SDEdit from the nearest fit-split
    template, 50 steps, seed 0) on the validation split for each ``t0``, template matching first.

    Returns (a one-line description of the run, {method: summary table (paper alignment)}).
    """
    torch.set_num_threads(1)
    model, state = load_snapshot(pick_snapshot(Path(run), cpu_minutes), weights)
    fit, val = load_split(data)
    recs = list(val)
    spectra = np.stack([r.spectrum for r in recs])
    idx, _ = nearest_by_mse(spectra, fit.spectra())
    templates = [fit[int(i)].environment for i in idx]
    head = (
        f"{Path(run).name} step {state['step']} ({weights}), {len(recs)} validation sites, "
        f"templates from {len(fit)} fit sites"
    )
    gens = {"template": templates}
    for t0 in t0s:
        gens[f"refine t0={t0}"] = refine_templates(model, spectra, templates, t0, seed=0, n_steps=50)
    tables = {}
    for name, gen in gens.items():
        ev = [{"paper": evaluate_pair(r.environment, g)} for r, g in zip(recs, gen)]
        tables[name] = summary_table(ev, "paper")
    return head, tables


def format_refine(tables: dict[str, dict]) -> list[str]:
    """Text table of :func:`refine_table` (RMSDs in Å, CN error in %)."""
    lines = [f"{'method':16s} {'RMSD1':>6s} {'RMSD all':>8s} {'CN1 err %':>9s} {'species':>7s} {'valid':>6s}"]
    for name, t in tables.items():
        lines.append(
            f"{name:16s} {t['rmsd_shell1']:6.3f} {t['rmsd_all']:8.3f} {t['cn_error_shell1_pct']:9.2f} "
            f"{t['species_accuracy']:7.3f} {t['validity']:6.3f}"
        )
    return lines


CURVE_HEADER = (
    f"{'variant':18s} {'CPU min':>7s} {'step':>6s} {'steps/CPU s':>11s} {'RMSD1':>6s} {'species':>7s} "
    f"{'valid':>6s} {'gap200':>7s}"
)


def format_curve_row(r: dict) -> str:
    """One line of the learning curve: an :func:`evaluate_run` result."""
    return (
        f"{r['variant']:18s} {r['cpu_minutes']:7.1f} {r['step']:6d} {r['step'] / (60 * r['cpu_minutes']):11.2f} "
        f"{r['rmsd_shell1']:6.3f} {r['species_accuracy']:7.3f} {r['validity']:6.3f} {r['probe_gap_t200']:7.3f}"
    )


def collect_evaluations(runs: list[str | Path]) -> list[dict]:
    """The full-validation evaluations (``eval_*.json`` without ``_n``) of the runs, sorted by
    (CPU minutes, variant, weights)."""
    rows = []
    for run in runs:
        for p in sorted(Path(run).glob("eval_*.json")):
            if re.search(r"_n\d+$", p.stem):  # the table holds full validation runs only (curve subsets are _nK)
                continue
            row = json.loads(p.read_text())
            if row.get("sampler", "ddim-50") == "ddim-50" and row.get("noise_scale", 1.0) == 1.0:  # one sampler
                rows.append(row)
    rows.sort(key=lambda r: (r["cpu_minutes"], r["variant"], r["weights"]))
    return rows


def table_markdown(rows: list[dict]) -> str:
    """Markdown table of evaluation rows over :data:`COLUMNS` (non-integer floats to 3 decimals)."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) and not float(v).is_integer() else str(v)

    return head + "".join("| " + " | ".join(fmt(r.get(c, "")) for c in COLUMNS) + " |\n" for r in rows)


#: The metrics :func:`sampler_sweep` averages over seeds.
SWEEP_METRICS = ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy", "validity")


def parse_sampler(spec: str) -> tuple[str, int, float]:
    """``"ddim-50"``, ``"ancestral-50"`` or ``"ancestral-50@0.7"`` -> (sampler, n_steps, noise_scale)."""
    try:
        name_steps, _, ns = spec.partition("@")
        name, steps = name_steps.rsplit("-", 1)
        out = (name, int(steps), float(ns) if ns else 1.0)
    except ValueError:
        raise ValueError(
            f"sampler setting {spec!r}: expected NAME-STEPS[@NOISE_SCALE], e.g. ancestral-50@0.7"
        ) from None
    if name not in SAMPLERS or out[1] < 1 or (name == "ddim" and out[2] != 1.0):
        raise ValueError(f"sampler setting {spec!r}: ddim-N or ancestral-N[@noise_scale], N >= 1")
    return out


def sampler_sweep(
    run: Path,
    data: str | Path,
    settings: list[str],
    seeds: list[int],
    cpu_minutes: float | None = None,
    weights: str = "ema",
) -> dict:
    """Sampler settings of one snapshot compared on the validation split, each over several seeds.

    For every setting (:func:`parse_sampler`) and seed: one sample per validation site with the
    target's atom count, paper alignment, :data:`SWEEP_METRICS`.  Returns (and writes as
    ``sampling_<snapshot>_<weights>.json`` into the run) ``{"snapshot", "weights", "seeds",
    "rows": [{"setting", "per_seed": {metric: [...]}, "mean": {...}, "sd": {...}}]}``: the spread
    over seeds is the noise a single validation number carries.  Rows of other settings already in that
    file (same snapshot and seeds) are kept, so settings can be measured in several calls.
    """
    run = Path(run)
    snap, model, state, recs, targets, spectra = _validation_inputs(run, data, cpu_minutes, weights)
    rows = []
    for spec in settings:
        sampler, n_steps, ns = parse_sampler(spec)
        per_seed: dict[str, list[float]] = {k: [] for k in SWEEP_METRICS}
        for seed in seeds:
            table = _score_one_sample(model, targets, spectra, seed, sampler=sampler, n_steps=n_steps, noise_scale=ns)
            for k in SWEEP_METRICS:
                per_seed[k].append(float(table[k]))
        rows.append(
            {
                "setting": spec,
                "per_seed": per_seed,
                "mean": {k: float(np.mean(v)) for k, v in per_seed.items()},
                "sd": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in per_seed.items()},
            }
        )
    out = {
        "variant": run.name,
        "snapshot": snap.name,
        "step": int(state["step"]),
        "weights": weights,
        "n_val": len(recs),
        "seeds": list(seeds),
        "rows": rows,
    }
    path = run / f"sampling_{snap.stem}_{weights}.json"
    if path.exists():
        out = merge_sweeps(json.loads(path.read_text()), out)
    atomic_write_text(path, json.dumps(out, indent=1))
    return out


def merge_sweeps(earlier: dict, new: dict) -> dict:
    """``new`` (a :func:`sampler_sweep` result) with the rows of ``earlier`` whose settings it did not measure,
    when both are of the same snapshot, weights and seeds (else ``new`` alone); earlier rows come first."""
    same = all(earlier.get(k) == new.get(k) for k in ("snapshot", "weights", "seeds"))
    if not same:
        return new
    mine = {r["setting"] for r in new["rows"]}
    return {**new, "rows": [r for r in earlier.get("rows", []) if r["setting"] not in mine] + list(new["rows"])}


def format_sweep(result: dict) -> str:
    """Markdown table of a :func:`sampler_sweep` result: mean ± sd over seeds."""
    head = "| sampler | " + " | ".join(SWEEP_METRICS) + " |\n|---|" + "---|" * len(SWEEP_METRICS) + "\n"
    body = "".join(
        f"| {r['setting']} | " + " | ".join(f"{r['mean'][k]:.3f} ± {r['sd'][k]:.3f}" for k in SWEEP_METRICS) + " |\n"
        for r in result["rows"]
    )
    return head + body
