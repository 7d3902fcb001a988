"""Which of K samples to keep, judged on the validation split: first sample, composition medoid, the learned
confidence pick(s) (issue 32, :mod:`s2s.selection`), oracle of K - over two sampling seeds, with intervals.

    python benchmarks/selection_val.py                                   # shipped selector, seeds 0 and 1, stride 2
    python benchmarks/selection_val.py --selector models/selector_v1/selector.pt runs/selection/pointwise.pt
    python benchmarks/selection_val.py --stride 1 --figure docs/figures/selection_reliability.png

K = 8 DDIM-50 samples per validation site with the target's atom count (:class:`s2s.studies.best_of_k.
BestOfKSettings`, the cache entries of ``benchmarks/medoid_val.py --stride S --seed SEED``), labelled with their
paper-aligned errors (:mod:`s2s.selection.data`); the tables are read from ``runs/selection/`` when
``scripts/selection_data.py val`` made them, else sampled and labelled here.  Every pick is scored with the
paper alignment: mean 1st-shell and all-atom RMSD (Å, NaN-skipping), species accuracy, validity, per seed and
pooled (each site's mean over the seeds), with 95 % intervals resampling the validation structures
(:mod:`s2s.studies.bootstrap`) and the paired difference of each confidence pick to the composition medoid.
Then the calibration of each selector's "1st shell within 0.3 Å" probability over all K candidates of both
seeds: expected calibration error (10 bins) and a reliability diagram (``--figure``).  The validation split is
the one of :func:`s2s.splits.validation_split` (never the test split); the selectors never saw it.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

KEYS = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity")
LABEL_OF = {
    "rmsd_shell1": "rmsd_shell1",
    "rmsd_all": "rmsd_all",
    "species_accuracy": "species_match",
    "validity": "valid",
}


def val_table(seed: int, stride: int, a) -> dict:
    from s2s.model.cache import BestOfKSettings
    from s2s.resources import resolve
    from s2s.selection.data import load_table, sample_table, save_table
    from s2s.studies.ablation import load_split

    name = f"val_s{seed}_k{a.k}.npz" if stride == 1 else f"val_s{seed}_k{a.k}_stride{stride}.npz"
    path = Path(a.tables) / name
    if path.exists():
        return load_table(path)
    print(f"{path} missing: sampling and labelling the validation sites (slow on CPU)", flush=True)
    _, val = load_split(resolve("data", a.data))
    table = sample_table(
        resolve("model_xtb", a.model),  # xTB spectra: the xTB generator
        list(val),
        list(range(0, len(val), stride)),
        BestOfKSettings(k=a.k, seed=seed),
        a.cache_dir,
    )
    save_table(path, table)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--selector", nargs="+", default=["runs/selection/selector.pt"], help="selector file(s)")
    ap.add_argument("--seeds", default="0,1", help="sampling seeds (comma-separated)")
    ap.add_argument("--stride", type=int, default=2, help="every STRIDE-th validation site (default 2)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--model", default=None)
    ap.add_argument("--forward", default=None, help="forward model (default: the shipped one)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--tables", default="runs/selection")
    ap.add_argument("--cache-dir", default="runs/generated")
    ap.add_argument("--figure", default=None, help="write the reliability diagram here (png)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(1)
    from s2s.forward.model import ForwardModel
    from s2s.resources import resolve
    from s2s.selection.model import Selector
    from s2s.selection.train import (
        cached_forward_scores,
        composition_medoid,
        expected_calibration_error,
        oracle_index,
        pick_in_commonest_composition,
        picked,
        reliability,
        table_inputs,
    )
    from s2s.studies.bootstrap import describe, interval, resampled_means

    seeds = [int(s) for s in a.seeds.split(",")]
    tables = {s: val_table(s, a.stride, a) for s in seeds}
    sites = {s: tables[s]["site"].tolist() for s in seeds}
    if any(sites[s] != sites[seeds[0]] for s in seeds):
        raise SystemExit("the seeds' tables hold different validation sites")
    groups = tables[seeds[0]]["structure_id"].tolist()
    selectors = {}
    for p in a.selector:
        sel = Selector.load(p)
        name = sel.info.get("name", Path(p).stem)  # loss:features:spectrum:forward
        if sel.info.get("cross_validation", {}).get("chosen") == name:
            name += " [CV choice]"
        if name in selectors:  # the same configuration trained on other samples (e.g. cross-fitted): name its folder
            name += f" [{Path(p).parent.name}]"
        selectors.setdefault(name, sel)
    forward = ForwardModel.load(resolve("forward", a.forward))
    inputs = {}
    for s in seeds:
        name = f"val_s{s}_k{a.k}.npz" if a.stride == 1 else f"val_s{s}_k{a.k}_stride{a.stride}.npz"
        cached_forward_scores(Path(a.tables) / name, tables[s], forward)
        inputs[s] = table_inputs(tables[s])
    picks: dict[str, dict[int, np.ndarray]] = {"first sample": {}, "composition medoid": {}}
    probs: dict[str, dict[int, np.ndarray]] = {}
    for s in seeds:
        t = tables[s]
        picks["first sample"][s] = np.zeros(int(t["shape"][0]), dtype=int)
        picks["composition medoid"][s] = composition_medoid(t)
    for name, sel in selectors.items():
        picks[f"confidence ({name})"], probs[name] = {}, {}
        picks[f"confidence ({name}), commonest comp."] = {}
        for s in seeds:
            sc = sel.scores(inputs[s])
            picks[f"confidence ({name})"][s] = np.argmax(sc, axis=1)
            picks[f"confidence ({name}), commonest comp."][s] = pick_in_commonest_composition(sc, inputs[s])
            probs[name][s] = sel.probability(sc)
    picks["oracle of K"] = {s: oracle_index(tables[s]) for s in seeds}

    n_struct = len(set(groups))
    print(f"{len(groups)} validation sites of {n_struct} structures, K = {a.k}, seeds {seeds}; paper alignment")
    print(f"intervals: {describe(n_groups=n_struct)} (s2s.studies.bootstrap)\n")
    out: dict = {"sites": len(groups), "structures": n_struct, "k": a.k, "seeds": seeds, "picks": {}}
    header = f"{'pick':42s}{'seed':>6s}" + "".join(f"{c:>22s}" for c in KEYS)
    print(header)
    for name, by_seed in picks.items():
        per_seed = {s: picked(tables[s], by_seed[s]) for s in seeds}
        res = {}
        for label, cols in [(str(s), [per_seed[s]]) for s in seeds] + [("pooled", [per_seed[s] for s in seeds])]:
            vals = np.column_stack(
                [np.nanmean(np.stack([c[LABEL_OF[k]].astype(float) for c in cols]), axis=0) for k in KEYS]
            )
            means = resampled_means(vals, groups)
            res[label] = {k: [float(np.nanmean(vals[:, j])), *interval(means[:, j])] for j, k in enumerate(KEYS)}
            print(
                f"{name:48s}{label:>6s}"
                + "".join(f"{f'{v[0]:.3f} ({v[1]:.3f}-{v[2]:.3f})':>22s}" for v in res[label].values())
            )
        out["picks"][name] = res
    base = picks["composition medoid"]
    print("\npaired difference to the composition medoid, pooled over the seeds (negative RMSD = better)")
    for name in [n for n in picks if n.startswith("confidence")]:
        d = []
        for k in KEYS:
            a_ = np.nanmean(
                np.stack([picked(tables[s], picks[name][s])[LABEL_OF[k]].astype(float) for s in seeds]), axis=0
            )
            b_ = np.nanmean(np.stack([picked(tables[s], base[s])[LABEL_OF[k]].astype(float) for s in seeds]), axis=0)
            diff = a_ - b_
            d.append([float(np.nanmean(diff)), *interval(resampled_means(diff, groups)[:, 0])])
        out["picks"][name]["difference_to_composition_medoid"] = dict(zip(KEYS, d))
        print(f"{name:48s}" + "".join(f"{f'{v[0]:+.3f} ({v[1]:+.3f}..{v[2]:+.3f})':>26s}" for v in d))

    print("\ncalibration of P(1st-shell RMSD <= 0.3 A), all K candidates of every seed")
    out["calibration"] = {}
    for name, by_seed in probs.items():
        p = np.concatenate([by_seed[s].ravel() for s in seeds])
        r = np.concatenate([tables[s]["rmsd_shell1"].ravel() for s in seeds])
        y = np.isfinite(r) & (r <= selectors[name].config.threshold)
        pk = np.concatenate([by_seed[s][np.arange(len(groups)), picks[f"confidence ({name})"][s]] for s in seeds])
        rk = np.concatenate([picked(tables[s], picks[f"confidence ({name})"][s])["rmsd_shell1"] for s in seeds])
        yk = np.isfinite(rk) & (rk <= selectors[name].config.threshold)
        rel = reliability(p, y)
        out["calibration"][name] = {
            "ece_all_candidates": expected_calibration_error(p, y),
            "ece_picked": expected_calibration_error(pk, yk),
            "mean_probability": float(p.mean()),
            "observed_frequency": float(y.mean()),
            "mean_probability_picked": float(pk.mean()),
            "observed_frequency_picked": float(yk.mean()),
            "reliability": {k: [float(v) for v in vals] for k, vals in rel.items()},
        }
        c = out["calibration"][name]
        print(
            f"{name:30s} ECE {c['ece_all_candidates']:.3f} (all {len(p)} candidates: "
            f"mean p {c['mean_probability']:.3f}, observed {c['observed_frequency']:.3f}); "
            f"picked: ECE {c['ece_picked']:.3f}, mean p "
            f"{c['mean_probability_picked']:.3f}, observed {c['observed_frequency_picked']:.3f}"
        )
    if a.figure and probs:
        plot_reliability(out["calibration"], a.figure, len(groups), seeds)
        print(f"reliability diagram: {a.figure}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1, sort_keys=True))
    return 0


def plot_reliability(cal: dict, path: str, n_sites: int, seeds: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.6, 5.6), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    for name, c in cal.items():
        r = c["reliability"]
        mids = (np.array(r["edges"][:-1]) + np.array(r["edges"][1:])) / 2
        ok = np.array(r["count"]) > 0
        ax.plot(
            np.array(r["mean_prob"])[ok],
            np.array(r["frequency"])[ok],
            "o-",
            label=f"{name} (ECE {c['ece_all_candidates']:.3f})",
        )
        axh.bar(mids, r["count"], width=0.09, alpha=0.6)
    ax.set_ylabel("observed share within 0.3 Å")
    ax.set_title(f"validation, {n_sites} sites x 8 samples, seeds {','.join(map(str, seeds))}", fontsize=9)
    ax.legend(fontsize=8)
    axh.set_xlabel("predicted P(1st-shell RMSD <= 0.3 Å)")
    axh.set_ylabel("candidates")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    raise SystemExit(main())
