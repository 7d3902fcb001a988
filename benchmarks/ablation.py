"""Training recipes compared at equal CPU time, judged on a validation split carved from training.

    python benchmarks/ablation.py train cpu_v3 --cpu-minutes 35          # -> runs/ablation/cpu_v3/
    python benchmarks/ablation.py evaluate runs/ablation/cpu_v3 [--cpu-minutes 35] [--weights ema|raw]
    python benchmarks/ablation.py report runs/ablation/* [--doc docs/model.md]
    python benchmarks/ablation.py curve runs/ablation/cpu runs/ablation/cpu_v3 --minutes 10 20 40 --n 96
    python benchmarks/ablation.py refine runs/ablation/cpu_v3 --t0 50 100 200 300     # SDEdit from templates

``train`` fits a recipe (a preset of :mod:`s2s.config`, or a named variant below) on the training
split minus the validation structures (:func:`s2s.dataset.validation_split`, 10 % of the training
structures by hash, seed 1), one thread, until its process CPU time reaches the budget, keeping
the raw and EMA weights every ``--snapshot-every`` steps (resumable: rerun with a larger budget).
``evaluate`` takes the snapshot nearest below a CPU time (default: the last) and measures it on the
validation split: DDIM-50 generation with the target's atom count (1st-shell RMSD, species accuracy,
validity, paper alignment) and the denoising probe's conditioning gap (:mod:`s2s.model.probe`).
``report`` prints the table (variant, CPU minutes, steps, metrics) and can write it into a doc.
``curve`` prints, for several runs in one go, training steps per CPU second and the validation
metrics of the snapshots at the given CPU minutes (the learning curve against CPU time).
The test split is never touched here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from s2s.config import get_preset, replace
from s2s.dataset import Dataset, validation_split
from s2s.evaluation.evaluate import summary_table
from s2s.evaluation.metrics import evaluate_pair
from s2s.model import S2SModel
from s2s.config import S2SConfig
from s2s.model.probe import conditioning_gap
from s2s.model.sample import generate
from s2s.model.train import train


def variants() -> dict:
    """Recipes by name: the presets, and single changes on top of ``cpu_v3`` (``_nosc``: without self-conditioning)."""
    v3 = get_preset("cpu_v3")
    return {
        "cpu": get_preset("cpu"),
        "cpu_v3": v3,
        "cpu_v3_nosc": replace(v3, model=replace(v3.model, self_condition=False)),
        "cpu_v3_add": replace(v3, model=replace(v3.model, spectrum_encoder="add")),
        "cpu_v3_eps": replace(v3, diffusion=replace(v3.diffusion, parameterization="eps", loss_weight="min_snr")),
    }


def load_split(data: str):
    ds = Dataset.load(data)
    fit, val = validation_split(ds)
    return fit, val


def cmd_train(a) -> int:
    cfg = variants()[a.variant]
    cfg = replace(cfg, train=replace(cfg.train, num_threads=1, epochs=10**6))
    fit, _ = load_split(a.data)
    out = Path(a.out or f"runs/ablation/{a.variant}")
    info = {"variant": a.variant, "dataset": a.data, "fit_sites": len(fit)}
    r = train(cfg, [r.environment for r in fit], fit.spectra(), out, cpu_budget=a.cpu_minutes * 60.0,
              snapshot_every=a.snapshot_every, info=info, progress=not a.quiet)
    last = r.history[-1]
    print(f"{a.variant}: {r.step} steps, {last['cpu_seconds'] / 60:.1f} CPU min, "
          f"{r.step / max(last['cpu_seconds'], 1e-9):.2f} steps per CPU second")
    return 0


def pick_snapshot(run: Path, cpu_minutes: float | None) -> Path:
    snaps = sorted((run / "snapshots").glob("step_*.pt"))
    if not snaps:
        raise FileNotFoundError(f"{run}/snapshots: no snapshots (train with --snapshot-every)")
    if cpu_minutes is None:
        return snaps[-1]
    best = None
    for p in snaps:
        if torch.load(p, map_location="cpu", weights_only=False)["cpu_seconds"] <= cpu_minutes * 60.0 + 1.0:
            best = p
    if best is None:
        raise ValueError(f"{run}: no snapshot within {cpu_minutes} CPU minutes")
    return best


def load_snapshot(path: Path, weights: str) -> tuple[S2SModel, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = S2SModel(S2SConfig.from_dict(state["config"]), n_max=state["n_max"])
    model.load_state_dict(state["model" if weights == "raw" else "ema"])
    model.eval()
    return model, state


def cmd_refine(a) -> int:
    """Retrieval-guided refinement (s2s.model.refine) on the validation split, for several t0; template matching first."""
    from s2s.model.refine import refine_templates
    from s2s.evaluation.template import nearest_by_mse

    torch.set_num_threads(1)
    model, state = load_snapshot(pick_snapshot(Path(a.run), a.cpu_minutes), a.weights)
    fit, val = load_split(a.data)
    recs = list(val)
    spectra = np.stack([r.spectrum for r in recs])
    idx, _ = nearest_by_mse(spectra, fit.spectra())
    templates = [fit[int(i)].environment for i in idx]
    print(f"{Path(a.run).name} step {state['step']} ({a.weights}), {len(recs)} validation sites, templates from {len(fit)} fit sites")
    rows = {"template": templates}
    for t0 in a.t0:
        rows[f"refine t0={t0}"] = refine_templates(model, spectra, templates, t0, seed=0, n_steps=50)
    print(f"{'method':16s} {'RMSD1':>6s} {'RMSD all':>8s} {'CN1 err %':>9s} {'species':>7s} {'valid':>6s}")
    for name, gen in rows.items():
        ev = [{"paper": evaluate_pair(r.environment, g)} for r, g in zip(recs, gen)]
        t = summary_table(ev, "paper")
        print(f"{name:16s} {t['rmsd_shell1']:6.3f} {t['rmsd_all']:8.3f} {t['cn_error_shell1_pct']:9.2f} "
              f"{t['species_accuracy']:7.3f} {t['validity']:6.3f}")
    return 0


def cmd_curve(a) -> int:
    print(f"{'variant':18s} {'CPU min':>7s} {'step':>6s} {'steps/CPU s':>11s} {'RMSD1':>6s} {'species':>7s} {'valid':>6s} "
          f"{'gap200':>7s}")
    for run in a.runs:
        for minutes in a.minutes:
            ns = argparse.Namespace(run=run, cpu_minutes=minutes, weights=a.weights, guidance=0.0, n=a.n, data=a.data,
                                    quiet=True)
            try:
                r = cmd_evaluate(ns)
            except ValueError as err:
                print(f"{Path(run).name:18s} {minutes:7.1f}  ({err})")
                continue
            print(f"{r['variant']:18s} {r['cpu_minutes']:7.1f} {r['step']:6d} {r['step'] / (60 * r['cpu_minutes']):11.2f} "
                  f"{r['rmsd_shell1']:6.3f} {r['species_accuracy']:7.3f} {r['validity']:6.3f} {r['probe_gap_t200']:7.3f}")
    return 0


def cmd_evaluate(a) -> dict:
    torch.set_num_threads(1)
    run = Path(a.run)
    snap = pick_snapshot(run, a.cpu_minutes)
    model, state = load_snapshot(snap, a.weights)
    _, val = load_split(a.data)
    recs = list(val)
    if a.n:
        recs = [recs[i] for i in np.random.default_rng(0).choice(len(recs), size=min(a.n, len(recs)), replace=False)]
    targets = [r.environment for r in recs]
    spectra = np.stack([r.spectrum for r in recs])
    t0 = time.process_time()
    gen = generate(model, spectra, [e.n_atoms for e in targets], seed=0, sampler="ddim", n_steps=50,
                   guidance=a.guidance)
    t_gen = time.process_time() - t0
    rows = [{"paper": evaluate_pair(t, g[0])} for t, g in zip(targets, gen)]
    table = summary_table(rows, "paper")
    validity = float(np.mean([r["paper"]["valid"] for r in rows]))
    gap = conditioning_gap(model, targets, spectra, ts=(200, 500), seed=0)
    out = {"variant": run.name, "snapshot": snap.name, "weights": a.weights, "guidance": a.guidance,
           "step": int(state["step"]), "cpu_minutes": round(state["cpu_seconds"] / 60.0, 1), "n_val": len(recs),
           **{k: table[k] for k in ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy")},
           "validity": validity, **{f"probe_gap_t{t}": g for t, g in gap.items()},
           "generation_cpu_seconds": round(t_gen, 1)}
    name = (f"eval_{snap.stem}_{a.weights}" + (f"_w{a.guidance:g}" if a.guidance else "")
            + (f"_n{len(recs)}" if a.n else "") + ".json")
    tmp = run / (name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, run / name)
    if not getattr(a, "quiet", False):
        print(json.dumps(out))
    return out


COLUMNS = ("variant", "weights", "guidance", "cpu_minutes", "step", "rmsd_shell1", "rmsd_all", "cn_error_shell1_pct",
           "species_accuracy", "validity", "probe_gap_t200", "probe_gap_t500")


def table_markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) and not float(v).is_integer() else str(v)

    return head + "".join("| " + " | ".join(fmt(r.get(c, "")) for c in COLUMNS) + " |\n" for r in rows)


def cmd_report(a) -> int:
    rows = []
    for run in a.runs:
        for p in sorted(Path(run).glob("eval_*.json")):
            if "_n" not in p.stem:  # the table holds full validation runs only (curve subsets are named _nK)
                rows.append(json.loads(p.read_text()))
    rows.sort(key=lambda r: (r["cpu_minutes"], r["variant"], r["weights"]))
    md = table_markdown(rows)
    print(md)
    if a.doc:
        doc = Path(a.doc)
        text = doc.read_text()
        begin, end = "<!-- ablation:begin -->", "<!-- ablation:end -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{doc}: no {begin} ... {end} block to fill")
        new = text.split(begin)[0] + begin + "\n" + md + end + text.split(end, 1)[1]
        tmp = doc.with_name(doc.name + ".tmp")
        tmp.write_text(new)
        os.replace(tmp, doc)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/s2s_open_v1.h5")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("variant", choices=sorted(variants()))
    t.add_argument("--cpu-minutes", type=float, required=True)
    t.add_argument("--out", default=None)
    t.add_argument("--snapshot-every", type=int, default=500)
    t.add_argument("--quiet", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("run")
    e.add_argument("--cpu-minutes", type=float, default=None)
    e.add_argument("--weights", choices=("ema", "raw"), default="ema")
    e.add_argument("--guidance", type=float, default=0.0)
    e.add_argument("--n", type=int, default=None, help="validation sites (default: all)")
    c = sub.add_parser("curve")
    c.add_argument("runs", nargs="+")
    c.add_argument("--minutes", type=float, nargs="+", required=True)
    c.add_argument("--weights", choices=("ema", "raw"), default="ema")
    c.add_argument("--n", type=int, default=96)
    f = sub.add_parser("refine")
    f.add_argument("run")
    f.add_argument("--cpu-minutes", type=float, default=None)
    f.add_argument("--weights", choices=("ema", "raw"), default="ema")
    f.add_argument("--t0", type=int, nargs="+", default=[50, 100, 200, 300])
    r = sub.add_parser("report")
    r.add_argument("runs", nargs="+")
    r.add_argument("--doc", default=None)
    a = ap.parse_args(argv)
    res = {"train": cmd_train, "evaluate": cmd_evaluate, "report": cmd_report, "curve": cmd_curve,
           "refine": cmd_refine}[a.cmd](a)
    return 0 if isinstance(res, dict) else res


if __name__ == "__main__":
    sys.exit(main())
