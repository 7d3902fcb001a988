"""Models that read reference-fidelity (first-principles) spectra: recipes compared at equal CPU time on the
validation split (issue 29, item 4).

    python benchmarks/fidelity_recipes.py train finetune --cpu-minutes 30 --seed 0     # -> runs/fidelity/finetune_s0
    python benchmarks/fidelity_recipes.py train joint --cpu-minutes 30 --seed 0        # -> runs/fidelity/joint_s0
    python benchmarks/fidelity_recipes.py train joint_flag --cpu-minutes 30 --seed 0   # -> runs/fidelity/joint_flag_s0
    python benchmarks/fidelity_recipes.py translator --cpu-seconds 300                 # -> runs/fidelity/translator
    python benchmarks/fidelity_recipes.py translate                                    # -> runs/fidelity/translated.h5
    python benchmarks/fidelity_recipes.py train translated --cpu-minutes 25 --seed 0   # -> runs/fidelity/translated_s0
    python benchmarks/fidelity_recipes.py translate --translator models/forward_ref_v1/model.pt  # forward labels
    python benchmarks/fidelity_recipes.py evaluate runs/fidelity/finetune_s0 v6 --fidelity reference --seeds 0 1
    python benchmarks/fidelity_recipes.py map                                   # -> runs/fidelity/fidelity_map.npz
    python benchmarks/fidelity_recipes.py evaluate v6 --input-map runs/fidelity/fidelity_map.npz --as v6_map
    python benchmarks/fidelity_recipes.py breakdown runs/fidelity/v6_map --paired-to v6 --input-map MAP.npz
    python benchmarks/fidelity_recipes.py evaluate runs/fidelity/* v6 --fidelity xtb --seeds 0 1
    python benchmarks/fidelity_recipes.py report runs/fidelity/* v6
    python benchmarks/fidelity_recipes.py counts runs/fidelity/* v6 --fidelity reference   # the atom-count head
    python benchmarks/fidelity_recipes.py evaluate runs/fidelity/* v6 --atom-count head   # N from the head
    python benchmarks/fidelity_recipes.py head --cv --data runs/fidelity/translated.h5     # refit p(N | s) alone
    python benchmarks/fidelity_recipes.py head --data runs/fidelity/translated.h5 --out runs/fidelity/v9head_s0
    python benchmarks/fidelity_recipes.py train joint --init-from none --preset gpu_v3 --device cuda --cpu-minutes 6 \
        --out runs/device/gpu_joint_s1 --seed 1     # on a lent GPU: scripts/device_fidelity.sh

Recipes (each continues the shipped model, ``models/s2s_open_v6/checkpoint.pt``, preset cpu_v3, on the fit
split: the training split minus the validation structures; one thread; ``--cpu-minutes`` of *additional*
process CPU time, so recipes compare at equal CPU):

- ``finetune`` (a): only the reference spectra of the fit sites (``s2s train --fidelity reference``);
- ``joint`` (c): both fidelities, two records per site that has both (``--fidelity both``); the model is
  told nothing about the fidelity and has to read it from the spectrum;
- ``joint_flag`` (c, as the issue words it): ``joint`` with the fidelity as an input (``--fidelity-input``,
  ``ModelConfig.fidelity_input``): a flag on the excited atom, 1 for a reference (first-principles) spectrum and
  0 for an xTB one; the shipped model's input layer gets a zero column for it, so the run starts from exactly
  the shipped network and learns what the flag changes.  ``evaluate`` gives it the flag of the evaluated
  fidelity (reference 1, xtb 0);
- ``translated`` (b): the translator (:mod:`s2s.forward.translate`: SOAP + the site's xTB spectrum -> its
  reference spectrum, trained on the fit sites that have both; ``translator``) relabels every training site
  (``translate`` writes runs/fidelity/translated.h5); the model then reads the reference spectrum where one
  exists and the translation elsewhere (``--fidelity translated``).  The translator's CPU counts against this
  recipe's budget: give it ``--cpu-minutes`` minus the translator's minutes;
- ``translated_joint``: ``joint`` plus the translations of the sites without a reference spectrum
  (``--fidelity all``): every site's xTB spectrum, and a reference-like one for every site;
- ``xtb``: the xTB spectra only, the control (what the same CPU buys without any reference spectrum).

``evaluate`` generates one sample per validation site (DDIM-50, the target's atom count, paper alignment)
from the chosen fidelity's spectra for every sampling seed and writes ``eval_<fidelity>_s<seed>.json`` into the
run (``v6`` names the shipped model; its evaluations go to runs/fidelity/v6).  ``report`` prints the table:
per run and fidelity the mean over seeds of 1st-shell RMSD, all-atom RMSD, CN1 error, species, validity,
and the 95 % interval over validation structures of the first seed (:mod:`s2s.studies.bootstrap`).
The test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from s2s.cli import main as s2s_main
from s2s.cli.data import load_dataset
from s2s.files import atomic_write_text
from s2s.resources import default_path, resolve

RECIPES = {
    "finetune": "reference",
    "joint": "both",
    "joint_flag": "both",
    "translated": "translated",
    "translated_joint": "all",
    "xtb": "xtb",
}
#: Recipes whose model is told each spectrum's fidelity (``s2s train --fidelity-input``).
FIDELITY_INPUT_RECIPES = ("joint_flag",)
BASELINE = "v6"
UNBOUNDED_EPOCHS = 10**7
FROM_SCRATCH = "none"  # --init-from none: train a new network of the preset
RUNS = Path("runs/fidelity")
#: How ``evaluate`` sets each sample's atom count (``--atom-count``).
ATOM_COUNTS = ("target", "head")
KEYS = ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy", "validity")


def shipped_checkpoint() -> Path:
    """v6's checkpoint (resource ``model_xtb``), where every recipe starts."""
    return Path(default_path("model_xtb")).parent / "checkpoint.pt"


def translated_data(runs_dir: Path = RUNS) -> Path:
    return Path(runs_dir) / "translated.h5"


def cmd_translator(a: argparse.Namespace) -> int:
    argv = ["train-forward", "--translator", "--data", str(a.data), "--out", str(Path(a.runs_dir) / "translator")]
    argv += ["--cpu-seconds", str(a.cpu_seconds), "--threads", "1", "--quiet"]
    if a.reference_store:
        argv += ["--reference-store", str(a.reference_store)]
    print("s2s " + " ".join(argv))
    return s2s_main(argv)


def cmd_translate(a: argparse.Namespace) -> int:
    from s2s.dataset import Dataset
    from s2s.forward.model import ForwardModel
    from s2s.forward.translate import translate

    translator = ForwardModel.load(a.translator or Path(a.runs_dir) / "translator")
    out = translate(Dataset.load(a.data), translator)
    path = translated_data(a.runs_dir)
    out.save(path)
    print(f"{out.meta['translated_sites']} training sites translated by {translator.path} into {path}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    out = Path(a.out or RUNS / f"{a.recipe}_s{a.seed}")
    data = translated_data(a.runs_dir) if RECIPES[a.recipe] in ("translated", "all") else a.data
    argv = ["train", "--data", str(data), "--split", "fit", "--preset", a.preset, "--out", str(out)]
    argv += ["--fidelity", RECIPES[a.recipe]]
    if str(a.init_from) != FROM_SCRATCH:  # 'none': a new network of the preset (e.g. gpu_v3 on a GPU)
        argv += ["--init-from", str(a.init_from or shipped_checkpoint())]
    if a.device != "cpu":
        argv += ["--device", a.device]
    if a.recipe in FIDELITY_INPUT_RECIPES:
        argv += ["--fidelity-input"]
    argv += ["--cpu-minutes", str(a.cpu_minutes), "--threads", "1", "--seed", str(a.seed), "--quiet"]
    # the CPU budget ends every recipe: without this the preset's epochs would end a recipe on a small set
    # (finetune on 157 sites: 300 epochs = 900 steps, 2 of its 15 CPU minutes) long before its budget
    argv += ["--epochs", str(UNBOUNDED_EPOCHS)]
    if a.reference_store:
        argv += ["--reference-store", str(a.reference_store)]
    if a.lr:
        argv += ["--lr", str(a.lr)]
    if a.lr_decay_steps:
        argv += ["--lr-decay-steps", str(a.lr_decay_steps), "--lr-min-factor", str(a.lr_min_factor)]
    if a.reference_repeat > 1:
        argv += ["--reference-repeat", str(a.reference_repeat)]
    print("s2s " + " ".join(argv))
    return s2s_main(argv)


def cmd_counts(a: argparse.Namespace) -> int:
    """The atom-count head (``s2s predict`` draws N from it) on the validation spectra of ``--fidelity``."""
    from s2s.model.train import load_model
    from s2s.splits import validation_split
    from s2s.studies.evaluate import atom_count_table

    _, val = validation_split(load_dataset(a.data, a.fidelity, a.reference_store))
    print(
        f"atom-count head, validation at fidelity {a.fidelity}: {len(val)} sites"
        f" of {len(val.structure_ids())} structures"
    )
    print("| run | top-1 | mean abs error (atoms) | mean log p(N) |")
    print("|---|---|---|---|")
    for run in a.runs:
        s = atom_count_table(load_model(_model_path(run, a.runs_dir)[0]), list(val))
        print(f"| {run} | {s['top1']:.3f} | {s['mean_abs_error']:.2f} | {s['log_likelihood']:.2f} |")
    return 0


#: the sources a refitted atom-count head may learn from (``head --sources``), as record fidelities
HEAD_SOURCES = ("reference", "translated", "xtb")


def _head_inputs(a: argparse.Namespace):
    """(spectra (M, 200), counts (M,), fidelities (M,), structure ids (M,)) of the fit records of ``a.sources``."""
    from s2s.splits import validation_split

    fit, _ = validation_split(load_dataset(a.data, a.fidelity, a.reference_store))
    recs = [r for r in fit if r.fidelity in a.sources]
    if not recs:
        raise SystemExit(f"head: no fit record of fidelity {', '.join(a.sources)} in {a.data}")
    x = np.stack([np.asarray(r.spectrum, dtype=np.float32) for r in recs])
    n = np.array([r.environment.n_atoms for r in recs], dtype=np.int64)
    return x, n, np.array([r.fidelity for r in recs]), np.array([r.structure_id for r in recs])


def cmd_head(a: argparse.Namespace) -> int:
    """Refit the base model's atom-count head p(N | s) alone on fit spectra of ``--sources`` (the denoiser is
    untouched) and write ``OUT/model.pt``: the base generator with the new head.  ``--cv``: print the
    out-of-fold top-1 and mean log p(N) (5 folds of whole fit structures) per fidelity instead."""
    if not a.cv and a.out is None:
        raise SystemExit("head: --out is required (or --cv)")
    a.base = a.base or Path(default_path("model"))
    import torch

    from s2s.checkpoint_io import load_checkpoint
    from s2s.files import file_sha256
    from s2s.model.natoms import fit_atom_count_head
    from s2s.model.train import load_model, save_inference_model
    from s2s.selection.train import group_folds
    from s2s.studies.evaluate import atom_count_scores

    torch.set_num_threads(1)
    base = load_model(a.base)
    n_max = base.natoms.n_max
    t0 = time.process_time()
    x, n, fid, sid = _head_inputs(a)
    counts = {f: int((fid == f).sum()) for f in a.sources}
    settings = {"epochs": a.epochs, "weight_decay": a.weight_decay, "lr": a.lr, "hidden": a.hidden}
    if a.cv:
        folds = group_folds(sid, 5, seed=0)
        out = {f: ([], []) for f in a.sources}
        for k in range(5):
            tr = folds != k
            head = fit_atom_count_head(x[tr], n[tr], n_max, seed=a.seed + k, **settings)
            for f in a.sources:
                m = (folds == k) & (fid == f)
                out[f][0].append(head.probabilities(torch.as_tensor(x[m])).numpy())
                out[f][1].append(n[m])
        row = []
        for f in a.sources:
            s = atom_count_scores(np.concatenate(out[f][0]), np.concatenate(out[f][1]))
            row.append(f"{f} {s['top1']:.3f} / {s['log_likelihood']:.2f}")
        print(f"| {'+'.join(a.sources)} | {a.epochs} | {a.weight_decay:g} | " + " | ".join(row) + " |")
        return 0
    head = fit_atom_count_head(x, n, n_max, seed=a.seed, **settings)
    base.natoms = head
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    step = int(load_checkpoint(a.base).get("step", 0))
    save_inference_model(base, base.cfg, n_max, out_dir / "model.pt", step)
    run = {
        "recipe": "head",
        "base": str(a.base),
        "base_sha256": file_sha256(a.base),
        "data": str(a.data),
        "data_sha256": file_sha256(a.data),
        "fidelity": a.fidelity,
        "reference_store": str(a.reference_store),
        "split": "fit",
        "sources": list(a.sources),
        "n_records": counts,
        "seed": a.seed,
        **settings,
        "cpu_seconds": round(time.process_time() - t0, 1),
    }
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=1) + "\n")
    print(f"{out_dir / 'model.pt'}: {Path(a.base).name}'s generator, head refitted on {counts} fit records")
    return 0


def _model_path(run: str, runs_dir: Path = RUNS) -> tuple[Path, Path]:
    """(model.pt, folder for the evaluations) of a run folder or of ``v6`` (the xTB-trained generator, resource
    ``model_xtb``; round 5's joint run became the default, ``s2s_open_v9``)."""
    if run == BASELINE:
        return Path(default_path("model_xtb")), Path(runs_dir) / BASELINE
    return Path(run) / "model.pt", Path(run)


def evaluate_model(
    model_path: Path,
    records: list,
    seed: int,
    fidelity: str = "xtb",
    atom_count: str = "target",
    device: str = "cpu",
) -> dict:
    """One DDIM-50 sample per record, paper alignment: the summary table, validity and the 95 % intervals over
    structures; per-site rows kept for paired comparisons.  ``atom_count``: ``"target"`` (the paper's protocol:
    the target's atom count) or ``"head"`` (N drawn from the model's p(N | spectrum), as ``s2s predict`` does).
    A model with the fidelity input is given the flag of ``fidelity``, the evaluated one (reference 1.0, xtb
    0.0); the others are sampled as before.  ``device``: where the network runs (the noise is drawn on the CPU,
    so a seed gives the same noise on every device)."""
    if atom_count not in ATOM_COUNTS:
        raise ValueError(f"evaluate_model: atom_count must be one of {ATOM_COUNTS}, got {atom_count!r}")
    import torch

    from s2s.model.sample import generate
    from s2s.model.train import load_model
    from s2s.site_record import fidelity_flag
    from s2s.studies.bootstrap import summary_intervals
    from s2s.studies.evaluate import evaluate_generation, generation_inputs, summary_table

    torch.set_num_threads(1)
    model = load_model(model_path)
    spectra, n_atoms = generation_inputs(records)
    t0 = time.process_time()
    flag = {"fidelity": fidelity_flag(fidelity)} if model.cfg.model.fidelity_input else {}
    n_given = n_atoms if atom_count == "target" else None  # None: generate() draws N from the atom-count head
    gen = generate(model, spectra, n_given, seed=seed, sampler="ddim", n_steps=50, buckets=True, device=device, **flag)
    rows = evaluate_generation([r.environment for r in records], gen, methods=("paper",))
    table = summary_table(rows, "paper")
    groups = [r.structure_id for r in records]
    return {
        **{k: table[k] for k in KEYS if k in table},
        "n": len(records),
        "n_structures": len(set(groups)),
        "ci95": summary_intervals(rows, groups, "paper", keys=("rmsd_shell1", "species_accuracy", "validity")),
        "generation_cpu_s": round(time.process_time() - t0, 1),
        "sites": [f"{r.structure_id}:{r.site_index}" for r in records],
        "rmsd_shell1_per_site": [float(r["paper"]["rmsd_shell1"]) for r in rows],
        "species_accuracy_per_site": [float(bool(r["paper"]["species_match"])) for r in rows],
        "validity_per_site": [float(bool(r["paper"]["valid"])) for r in rows],
        "n_atoms_per_site": [int(g[0].n_atoms) for g in gen],
        "n_target_per_site": [int(n) for n in n_atoms],
    }


def cmd_map(a: argparse.Namespace) -> int:
    """Fit the fidelity map (reference -> xTB, :mod:`s2s.forward.fidelity_map`) on the fit sites that have both
    spectra, alpha by cross-validation over fit structures; print how close it brings the validation sites'
    reference spectra to their xTB spectra (RMS, eV^-1, median over sites) beside no map and the mean fit
    xTB spectrum; write ``<runs-dir>/fidelity_map.npz``."""
    from s2s.forward.fidelity_map import fidelity_pairs, fit_fidelity_map, rms_distance
    from s2s.predict.prepare import training_onset
    from s2s.simulate.reference_sites import BUILD_SETTINGS
    from s2s.splits import validation_split

    ds = load_dataset(a.data, "both", a.reference_store)
    fit, val = validation_split(ds.train)
    store = str(a.reference_store or "data/reference_sites")
    xf, _, _ = fidelity_pairs(fit)
    fmap = fit_fidelity_map(
        fit,
        meta={
            "source_onset_eV": training_onset(xf),  # s2s predict aligns measured spectra's onsets here
            "trained_on": "fit split",
            "reference_store": store,
            "calc_key": BUILD_SETTINGS.calc_key(),
            "data": Path(a.data).name,
            **({"provenance": a.provenance} if a.provenance else {}),
        },
    )
    xv, yv, recs = fidelity_pairs(val)
    _, yf, _ = fidelity_pairs(fit)
    rows = {
        "no map": rms_distance(xv, yv),
        "map": rms_distance(fmap(xv), yv),
        "mean fit xTB spectrum": rms_distance(yf.mean(0)[None], yv),
    }
    print(
        f"fit: {fmap.meta['n_pairs']} pairs of {fmap.meta['n_structures']} structures; alpha {fmap.alpha} "
        f"(cross-validated median RMS by alpha: {fmap.meta['cv_rms_by_alpha']})"
    )
    print(
        f"validation: {len(recs)} sites of {len({r.structure_id for r in recs})} structures, RMS to the site's "
        "xTB spectrum (eV^-1), median [10 %, 90 %]:"
    )
    for k, v in rows.items():
        print(f"  {k:<24} {np.median(v):.4f} [{np.quantile(v, 0.1):.4f}, {np.quantile(v, 0.9):.4f}]")
    inside = fmap.in_domain(xv)
    print(f"  validation reference spectra inside the map's domain: {inside.mean():.2f}")
    path = fmap.save(a.out or Path(a.runs_dir) / "fidelity_map.npz")
    print(f"wrote {path}")
    return 0


def replaced_inputs(a: argparse.Namespace, records: list) -> list:
    """The validation ``records`` (reference fidelity) with another input spectrum and everything else kept:
    ``xtb``, each site's own xTB spectrum (the ceiling of any map from reference to xTB); ``mean``, the mean xTB
    spectrum of the fit sites for every site (the floor: what the model draws knowing nothing of the site)."""
    import dataclasses

    from s2s.splits import validation_split

    xtb = load_dataset(a.data, "xtb")
    if a.replace_input == "xtb":
        own = {r.key: r.spectrum for r in xtb}
        return [dataclasses.replace(r, spectrum=own[r.key]) for r in records]
    mean = validation_split(xtb)[0].spectra().mean(0)
    return [dataclasses.replace(r, spectrum=mean.copy()) for r in records]


def cmd_evaluate(a: argparse.Namespace) -> int:
    from s2s.splits import validation_split

    ds = load_dataset(a.data, a.fidelity, a.reference_store)
    _, val = validation_split(ds)
    records = list(val)
    extra: dict = {}
    if a.new_since:
        # only the sites an older store (a frozen snapshot) did not hold: data no earlier round has seen
        seen = {r.key for r in load_dataset(a.data, "reference", a.new_since)}
        records = [r for r in records if r.key not in seen]
        if not records:
            raise SystemExit(f"evaluate: no validation site at fidelity {a.fidelity} that {a.new_since} lacks")
        extra["new_since"] = str(a.new_since)
    n_structures = len({r.structure_id for r in records})
    print(f"validation at fidelity {a.fidelity}: {len(records)} sites of {n_structures} structures")
    flag_fidelity = a.fidelity
    if a.input_map:
        from s2s.forward.fidelity_map import FidelityMap, with_mapped_spectra

        fmap = FidelityMap.from_file(a.input_map)
        if fmap.source != a.fidelity:
            raise SystemExit(f"{a.input_map}: maps {fmap.source} spectra, the input is {a.fidelity}")
        records, flag_fidelity = with_mapped_spectra(records, fmap), fmap.target
        extra.update({"input_map": str(a.input_map), "input_map_target": fmap.target})
        print(f"input spectra mapped {fmap.source} -> {fmap.target} by {a.input_map}")
    if a.replace_input:
        records, flag_fidelity = replaced_inputs(a, records), "xtb"
        extra["input_replaced_by"] = a.replace_input
        print(f"input spectra replaced by {a.replace_input} (the same sites and targets)")
    for run in a.runs:
        model_path, folder = _model_path(run, a.runs_dir)
        if a.as_run:
            folder = Path(a.runs_dir) / a.as_run
        for seed in a.seeds:
            res = evaluate_model(model_path, records, seed, flag_fidelity, a.atom_count, a.device)
            # N from the head is another protocol: its rows (and pairs) are kept apart as input "<fidelity>+headN"
            fid = a.fidelity if a.atom_count == "target" else f"{a.fidelity}+headN"
            res.update({"model": str(model_path), "fidelity": fid, "seed": seed, "data": str(a.data), **extra})
            res["atom_count"] = a.atom_count
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / f"eval_{fid}_s{seed}.json", json.dumps(res, indent=1))
            print(f"{run} seed {seed}: " + "  ".join(f"{k} {res[k]:.3f}" for k in KEYS if k in res))
    return 0


def extra_cpu(folder: Path) -> tuple[float, int]:
    """(CPU minutes, optimiser steps) of a run's last stage (its continuation of the shipped model), from
    loss.csv; (0, 0) without one (the shipped model itself)."""
    import csv

    path = Path(folder) / "loss.csv"
    if not path.exists():
        return 0.0, 0
    rows = list(csv.DictReader(path.read_text().splitlines()))
    stage = max(int(r.get("stage") or 0) for r in rows)
    mine = [r for r in rows if int(r.get("stage") or 0) == stage and r.get("cpu_seconds")]
    if not mine:
        return 0.0, 0
    before = [int(r["step"]) for r in rows if int(r.get("stage") or 0) < stage]
    return round(float(mine[-1]["cpu_seconds"]) / 60.0, 1), int(mine[-1]["step"]) - (max(before) if before else 0)


def collect(runs: list[str], runs_dir: Path = RUNS) -> list[dict]:
    """One row per (run, fidelity): the mean over seeds of each key, and the first seed's intervals."""
    out = []
    for run in runs:
        _, folder = _model_path(run, runs_dir)
        by_fid: dict[str, list[dict]] = {}
        for f in sorted(folder.glob("eval_*_s*.json")):
            d = json.loads(f.read_text())
            by_fid.setdefault(d["fidelity"], []).append(d)
        for fid, evals in sorted(by_fid.items()):
            evals.sort(key=lambda d: d["seed"])
            row = {"run": run, "fidelity": fid, "seeds": [d["seed"] for d in evals], "n": evals[0]["n"]}
            row["extra_cpu_min"], row["extra_steps"] = extra_cpu(folder)
            for k in KEYS:
                vals = [d[k] for d in evals if k in d]
                row[k] = float(np.mean(vals)) if vals else float("nan")
                row[f"{k}_seed_spread"] = float(np.ptp(vals)) if vals else float("nan")
            row["ci95"] = evals[0]["ci95"]
            out.append(row)
    return out


#: Per-site keys an evaluation keeps (``<key>_per_site``), so that runs pair site by site on them.
PAIRED_KEYS = ("rmsd_shell1", "species_accuracy", "validity")


def paired_difference(evals: list[dict], base: list[dict], key: str = "rmsd_shell1") -> dict:
    """Per-site ``key`` (1st-shell RMSD by default; :data:`PAIRED_KEYS`) of a run minus the baseline's on the
    same sites and sampling seeds (the seeds both have), averaged over those seeds: the mean and its 95 %
    interval over validation structures (:func:`s2s.studies.bootstrap.resampled_means`).  Sampling noise is
    shared as far as the two models share it; the interval is the honest one for "is this run better than the
    baseline on these sites".  Returns ``{"mean", "ci95", "seeds", "n"}`` (mean NaN when no seed is shared, or
    when an evaluation predates the key's per-site values)."""
    from s2s.studies.bootstrap import interval, resampled_means

    if key not in PAIRED_KEYS:
        raise ValueError(f"paired_difference: key must be one of {PAIRED_KEYS}, got {key!r}")
    seeds = sorted({d["seed"] for d in evals} & {d["seed"] for d in base})
    if not seeds or any(f"{key}_per_site" not in d for d in evals + base if d["seed"] in seeds):
        return {"mean": float("nan"), "ci95": [float("nan")] * 2, "seeds": [], "n": 0}
    per_site = paired_sites(evals, base, key)
    sites = sorted(per_site)
    d = np.array([per_site[k] for k in sites], dtype=np.float64)
    groups = [k.rsplit(":", 1)[0] for k in sites]
    return {"mean": float(np.nanmean(d)), "ci95": interval(resampled_means(d, groups)), "seeds": seeds, "n": len(d)}


def paired_sites(evals: list[dict], base: list[dict], key: str = "rmsd_shell1") -> dict[str, float]:
    """Site -> the run's ``key`` (default the 1st-shell RMSD, Å) minus the baseline's, averaged over the shared
    sampling seeds.  Raises when no seed is shared or when a shared seed was evaluated on other sites."""
    mine, theirs = {d["seed"]: d for d in evals}, {d["seed"]: d for d in base}
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        raise ValueError("paired_sites: no shared sampling seed")
    out: dict[str, list[float]] = {}
    for seed in seeds:
        a = dict(zip(mine[seed]["sites"], mine[seed][f"{key}_per_site"]))
        b = dict(zip(theirs[seed]["sites"], theirs[seed][f"{key}_per_site"]))
        if set(a) != set(b):
            raise ValueError(f"paired_difference: seed {seed} was evaluated on different sites ({len(a)} vs {len(b)})")
        for k in sorted(a):
            out.setdefault(k, []).append(a[k] - b[k])
    return {k: float(np.nanmean(v)) for k, v in out.items()}


def cmd_breakdown(a: argparse.Namespace) -> int:
    """The paired difference of ``report --paired-to``, split by whether the site's reference spectrum lies
    inside the fidelity map's domain and by composition (O/Si below, at, above 2): where a difference comes
    from.  The intervals resample validation structures."""
    from s2s.forward.fidelity_map import FidelityMap
    from s2s.studies.bootstrap import interval, resampled_means

    fmap = FidelityMap.from_file(a.input_map)
    ref = {f"{r.structure_id}:{r.site_index}": r for r in load_dataset(a.data, "reference", a.reference_store)}
    run = _evals(_model_path(a.run, a.runs_dir)[1]).get(a.fidelity, [])
    base = _evals(_model_path(a.paired_to, a.runs_dir)[1]).get(a.fidelity, [])
    d = paired_sites(run, base)
    sites = sorted(d)
    inside = {k: bool(fmap.in_domain(ref[k].spectrum)) for k in sites}
    x = {k: ref[k].x for k in sites}
    groups = {
        "all": sites,
        "inside the map's domain": [k for k in sites if inside[k]],
        "outside the map's domain": [k for k in sites if not inside[k]],
        "O/Si < 2": [k for k in sites if x[k] < 2 - 1e-9],
        "O/Si = 2": [k for k in sites if abs(x[k] - 2) <= 1e-9],
        "O/Si > 2": [k for k in sites if x[k] > 2 + 1e-9],
    }
    print(f"{a.run} minus {a.paired_to}, 1st-shell RMSD (Å), {a.fidelity} input, mean over shared seeds")
    print("| sites | n | structures | mean difference [95 % CI] |")
    print("|---|---|---|---|")
    for name, keys in groups.items():
        if not keys:
            print(f"| {name} | 0 | 0 | - |")
            continue
        v = np.array([d[k] for k in keys])
        g = [k.rsplit(":", 1)[0] for k in keys]
        lo, hi = interval(resampled_means(v, g)) if len(set(g)) > 1 else (float("nan"), float("nan"))
        print(f"| {name} | {len(keys)} | {len(set(g))} | {v.mean():+.3f} [{lo:+.2f}, {hi:+.2f}] |")
    return 0


def cmd_by_count(a: argparse.Namespace) -> int:
    """Each run's evaluations of input ``--fidelity`` (default ``reference+headN``, N drawn from the head), pooled
    over sampling seeds, split by whether a sample's drawn N is below, at or above its target's: the share of
    samples, their mean 1st-shell RMSD (Å) and species.  Under a drawn N the RMSD of a model whose count is
    wrong more often is not comparable with one whose count is right: this table shows why."""
    print(f"input {a.fidelity}, every sampling seed pooled")
    print("| run | seeds | drawn N | share | 1st shell (Å) | species |")
    print("|---|---|---|---|---|---|")
    for run in a.runs:
        evals = [e for e in _evals(_model_path(run, a.runs_dir)[1]).get(a.fidelity, []) if "n_atoms_per_site" in e]
        if not evals:
            print(f"| {run} | 0 | (no evaluation with per-site counts: rerun evaluate) | | | |")
            continue
        sign = np.concatenate([np.sign(np.subtract(e["n_atoms_per_site"], e["n_target_per_site"])) for e in evals])
        rmsd = np.concatenate([e["rmsd_shell1_per_site"] for e in evals])
        species = np.concatenate([e["species_accuracy_per_site"] for e in evals])
        for value, name in ((-1, "below"), (0, "right"), (1, "above"), (None, "all")):
            k = np.ones_like(sign, dtype=bool) if value is None else sign == value
            cells = f"{np.nanmean(rmsd[k]):.3f} | {np.mean(species[k]):.3f}" if k.any() else "- | -"
            print(f"| {run} | {len(evals)} | {name} | {k.mean():.3f} | {cells} |")
    return 0


def _evals(folder: Path) -> dict[str, list[dict]]:
    by_fid: dict[str, list[dict]] = {}
    for f in sorted(Path(folder).glob("eval_*_s*.json")):
        d = json.loads(f.read_text())
        by_fid.setdefault(d["fidelity"], []).append(d)
    return by_fid


def with_paired(rows: list[dict], baseline: str, runs_dir: Path = RUNS) -> list[dict]:
    """``rows`` (:func:`collect`) with ``paired`` (:func:`paired_difference` against ``baseline``'s evaluations
    of the same fidelity) in each row."""
    base = _evals(_model_path(baseline, runs_dir)[1])
    for r in rows:
        mine = _evals(_model_path(r["run"], runs_dir)[1]).get(r["fidelity"], [])
        r["paired"] = paired_difference(mine, base.get(r["fidelity"], []))
        r["paired_species"] = paired_difference(mine, base.get(r["fidelity"], []), "species_accuracy")
    return rows


def table_markdown(rows: list[dict]) -> str:
    head = (
        "| run | extra CPU min (steps) | input fidelity | val sites | seeds | 1st shell (Å) [95 % CI] "
        "| all (Å) | CN1 err (%) | species | validity |"
    )
    paired = any("paired" in r for r in rows)
    if paired:
        head += " 1st shell minus baseline (Å) [95 % CI], seeds | species minus baseline [95 % CI] |"
    lines = [head, "|" + "---|" * (12 if paired else 10)]
    for r in rows:
        ci = r["ci95"].get("rmsd_shell1", [float("nan")] * 2)
        line = (
            f"| {r['run']} | {r['extra_cpu_min']} ({r['extra_steps']}) | {r['fidelity']} | {r['n']} "
            f"| {len(r['seeds'])} | {r['rmsd_shell1']:.3f} "
            f"[{ci[0]:.2f}, {ci[1]:.2f}] | {r['rmsd_all']:.3f} | {r['cn_error_shell1_pct']:.1f} | "
            f"{r['species_accuracy']:.3f} | {r['validity']:.3f} |"
        )
        if paired:
            p = r["paired"]
            line += f" {p['mean']:+.3f} [{p['ci95'][0]:+.2f}, {p['ci95'][1]:+.2f}], {len(p['seeds'])} |"
            s = r.get("paired_species", {"mean": float("nan")})
            line += (
                " - |"
                if not np.isfinite(s["mean"])
                else f" {s['mean']:+.3f} [{s['ci95'][0]:+.2f}, {s['ci95'][1]:+.2f}] |"
            )
        lines.append(line)
    return "\n".join(lines)


def cmd_report(a: argparse.Namespace) -> int:
    rows = collect(a.runs, a.runs_dir)
    if a.fidelity:  # one input fidelity only (runs evaluated elsewhere on other sites pair on this one)
        rows = [r for r in rows if r["fidelity"] == a.fidelity]
    if a.paired_to:
        rows = with_paired(rows, a.paired_to, a.runs_dir)
    print(table_markdown(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("recipe", choices=list(RECIPES))
    t.add_argument("--cpu-minutes", type=float, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--lr-decay-steps", type=int, default=None, help="cosine decay from --lr over this many steps")
    t.add_argument("--lr-min-factor", type=float, default=0.1, help="final lr / lr of the decay")
    t.add_argument("--reference-repeat", type=int, default=1, help="recipe joint: each GPAW record this many times")
    t.add_argument(
        "--preset",
        default="cpu_v3",
        help="the preset of the --init-from run (default cpu_v3, v6's), or of the new network (--init-from none)",
    )
    t.add_argument("--out", type=Path, default=None)
    t.add_argument(
        "--init-from",
        default=None,
        help=f"default: the shipped model's checkpoint.pt; {FROM_SCRATCH!r}: a new network of --preset",
    )
    t.add_argument("--device", default="cpu", help="torch device (cuda: a GPU, e.g. --preset gpu_v3)")
    t.add_argument("--runs-dir", type=Path, default=RUNS, help="where the translated dataset is (recipe translated)")
    tr = sub.add_parser("translator")
    tr.add_argument("--cpu-seconds", type=float, default=300.0)
    tr.add_argument("--runs-dir", type=Path, default=RUNS)
    tl = sub.add_parser("translate")
    tl.add_argument("--runs-dir", type=Path, default=RUNS)
    tl.add_argument(
        "--translator",
        type=Path,
        default=None,
        help="the model that relabels: default RUNS_DIR/translator; a forward model of reference spectra "
        "(e.g. models/forward_ref_v1/model.pt) labels each site from its environment alone",
    )
    e = sub.add_parser("evaluate")
    e.add_argument("runs", nargs="+", help=f"run folders, or {BASELINE!r} for the shipped model")
    e.add_argument("--fidelity", choices=["reference", "xtb"], default="reference")
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    e.add_argument(
        "--atom-count",
        choices=list(ATOM_COUNTS),
        default="target",
        help="target (default, the paper's protocol) or head: N drawn from the model's p(N | spectrum), as s2s "
        "predict does; written as input fidelity '<fidelity>+headN' (eval_<fidelity>+headN_s<seed>.json)",
    )
    e.add_argument("--runs-dir", type=Path, default=RUNS, help=f"where {BASELINE!r}'s evaluations go")
    e.add_argument("--device", default="cpu", help="torch device of the generation (cuda: a GPU)")
    e.add_argument("--input-map", type=Path, default=None, help="a fidelity map (.npz) applied to the input spectra")
    e.add_argument(
        "--replace-input",
        choices=["xtb", "mean"],
        default=None,
        help="score the same sites from their xTB spectra (xtb: the ceiling of a map) or from the mean fit xTB "
        "spectrum (mean: the floor); use with --as",
    )
    e.add_argument(
        "--new-since",
        type=Path,
        default=None,
        help="a frozen copy of the store: evaluate only the validation sites it does not hold (data an earlier "
        "round has not seen); recorded as new_since",
    )
    e.add_argument(
        "--as", dest="as_run", default=None, help="write the evaluations to <runs-dir>/AS (e.g. v6_map) instead"
    )
    c = sub.add_parser("counts", help="the atom-count head p(N | spectrum) on the validation spectra")
    c.add_argument("runs", nargs="+", help=f"run folders, or {BASELINE!r} for the shipped model")
    c.add_argument("--fidelity", choices=["reference", "xtb"], default="reference")
    c.add_argument("--runs-dir", type=Path, default=RUNS)
    b = sub.add_parser("breakdown", help="a paired difference by the map's domain and by composition")
    b.add_argument("run")
    b.add_argument("--paired-to", required=True)
    b.add_argument("--input-map", type=Path, required=True)
    b.add_argument("--fidelity", default="reference")
    b.add_argument("--runs-dir", type=Path, default=RUNS)
    m = sub.add_parser("map")
    m.add_argument("--runs-dir", type=Path, default=RUNS, help="writes <runs-dir>/fidelity_map.npz")
    m.add_argument("--out", type=Path, default=None, help="write the map here instead")
    m.add_argument("--provenance", default="", help="recorded in the map (e.g. the store's git commit)")
    hd = sub.add_parser("head", help="refit the atom-count head alone on fit spectra (the denoiser untouched)")
    hd.add_argument("--base", type=Path, default=None, help="the generator (default: the shipped model)")
    hd.add_argument("--fidelity", default="all", help="how the dataset is read (default all: every fidelity)")
    hd.add_argument("--sources", nargs="+", choices=list(HEAD_SOURCES), default=list(HEAD_SOURCES))
    hd.add_argument("--epochs", type=int, default=100)
    hd.add_argument("--weight-decay", type=float, default=1e-2)
    hd.add_argument("--lr", type=float, default=1e-3)
    hd.add_argument("--hidden", type=int, default=128)
    hd.add_argument("--seed", type=int, default=0)
    hd.add_argument("--cv", action="store_true", help="print the 5-fold out-of-fold scores instead of writing")
    hd.add_argument("--out", type=Path, default=None)
    bc = sub.add_parser("by-count", help="1st shell and species by whether the drawn N is the target's")
    bc.add_argument("runs", nargs="+", help=f"run folders, or {BASELINE!r} for the shipped model")
    bc.add_argument("--fidelity", default="reference+headN", help="the evaluations' input fidelity")
    bc.add_argument("--runs-dir", type=Path, default=RUNS)
    r = sub.add_parser("report")
    r.add_argument("runs", nargs="+")
    r.add_argument("--runs-dir", type=Path, default=RUNS)
    r.add_argument("--fidelity", default=None, help="only the rows of this input fidelity (reference or xtb)")
    r.add_argument(
        "--paired-to",
        default=None,
        help=f"a run (or {BASELINE!r}) to compare every row with, site by site on the shared sampling seeds",
    )
    for p in (t, e, tr, tl, m, b, c, hd):
        p.add_argument("--data", type=Path, default=None, help="dataset file (default: the shipped one)")
        p.add_argument("--reference-store", type=Path, default=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if getattr(a, "data", "unset") is None:
        a.data = resolve("data")
    cmds = {"train": cmd_train, "translator": cmd_translator, "translate": cmd_translate, "map": cmd_map}
    cmds["breakdown"] = cmd_breakdown
    cmds["counts"] = cmd_counts
    cmds["head"] = cmd_head
    cmds["by-count"] = cmd_by_count
    return {**cmds, "evaluate": cmd_evaluate, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
