"""Which of K samples to keep, judged on the validation split: first sample, forward-model pick, medoid, oracle.

    python benchmarks/medoid_val.py                                   # shipped model, every 2nd validation site, K = 8
    python benchmarks/medoid_val.py --k 16 --alignments paper         # the cheaper medoid, more samples
    python benchmarks/medoid_val.py --model runs/ablation/X/model.pt --stride 1
    python benchmarks/medoid_val.py --stride 1 --alignments best,paper --seed 1   # another draw of the K samples

K DDIM-50 samples per validation site with the target's atom count (cached in runs/generated), picked by
:func:`s2s.studies.best_of_k.select` (first sample, forward-model pick, oracle) and by the medoid
(:func:`s2s.ensembles.pick.medoid_index`) and the composition medoid
(:func:`s2s.ensembles.pick.composition_medoid_index`) under each alignment of ``--alignments``; every pick
scored with the paper alignment (:func:`s2s.studies.evaluate.summary_table`) and printed with
template matching (fit-split templates) on the same sites, then the first shell on its own
(:func:`s2s.studies.evaluate.first_shell_table`) for every pick, and 95 % intervals resampling the
validation structures (:mod:`s2s.studies.bootstrap`).  The validation split is the one of
:func:`s2s.splits.validation_split` (never the test split).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from s2s.ensembles.pick import composition_medoid_index, consensus_average, medoid_of_distances
from s2s.forward.model import ForwardModel
from s2s.geometry.metrics import evaluate_pair
from s2s.model.cache import BestOfKSettings, sample_k
from s2s.resources import default_path
from s2s.retrieval.template import template_match
from s2s.studies.ablation import load_split
from s2s.studies.best_of_k import select
from s2s.studies.bootstrap import describe, summary_intervals
from s2s.studies.evaluate import FIRST_SHELL_KEYS, first_shell_table, summary_table

KEYS = ("rmsd_shell1", "rmsd_all", "cn_error_shell1_pct", "species_accuracy", "validity")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_path("model_xtb")))
    ap.add_argument("--forward", default=str(default_path("forward")))
    ap.add_argument("--data", default=str(default_path("data")))
    ap.add_argument("--stride", type=int, default=2, help="every STRIDE-th validation site (default 2)")
    ap.add_argument("--offset", type=int, default=0, help="first validation site (default 0; 1 = the other half)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of the K samples")
    ap.add_argument("--alignments", default="best,paper", help="comma-separated medoid alignments")
    ap.add_argument("--cache-dir", default="runs/generated")
    ap.add_argument("--cluster", action="store_true", help="also the medoid of the largest signature cluster")
    ap.add_argument(
        "--average", action="store_true", help="also the mean structure about the medoid (all samples; within 0.5 Å)"
    )
    ap.add_argument(
        "--variants",
        action="store_true",
        help="also target-free variants of the medoid: median distance, medoid of the bond-sane samples, densest",
    )
    ap.add_argument(
        "--anchor",
        type=int,
        nargs="*",
        default=[],
        metavar="M",
        help="also retrieval-anchored picks: the sample nearest to the M fit-split environments whose spectra "
        "are nearest (MSE) to the query, alone and plus the medoid score (not a pure-model pick)",
    )
    ap.add_argument(
        "--template-medoid",
        type=int,
        nargs="*",
        default=[],
        metavar="M",
        help="also retrieval consensus (not a pure-model pick): the medoid of the M fit-split environments whose "
        "spectra are nearest, and the medoid of the K samples together with them",
    )
    ap.add_argument(
        "--screened",
        type=float,
        nargs="*",
        default=None,
        help="also the medoid of the samples whose forward-model score is in the best fraction KEEP (e.g. 0.5 0.25)",
    )
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    fit, val = load_split(a.data)
    recs = list(val)[a.offset :: a.stride]
    targets = [r.environment for r in recs]
    spectra = np.stack([r.spectrum for r in recs])
    t0 = time.process_time()
    settings = BestOfKSettings(k=a.k, seed=a.seed)
    samples, _ = sample_k(a.model, spectra, [e.n_atoms for e in targets], settings, cache_dir=a.cache_dir)
    print(f"{len(recs)} validation sites, K = {a.k}: sampling {time.process_time() - t0:.0f} s CPU", flush=True)
    sel = select(samples, spectra, ForwardModel.load(a.forward), targets, medoid_alignment="paper")
    picks = {"first sample": sel["single"], "forward-model pick": sel["best_of_k"]}
    from s2s.ensembles.describe import pairwise_rmsd

    dist: dict[str, list[np.ndarray]] = {}  # (K, K) aligned RMSDs per site, computed once per alignment

    def distances(meth: str) -> list[np.ndarray]:
        if meth not in dist:
            t0 = time.process_time()
            dist[meth] = [pairwise_rmsd(row, method=meth) for row in samples]
            print(f"pairwise RMSD ({meth}): {time.process_time() - t0:.0f} s CPU", flush=True)
        return dist[meth]

    for meth in a.alignments.split(","):
        picks[f"medoid ({meth})"] = np.array([medoid_of_distances(d)[0] for d in distances(meth)])
        picks[f"comp. medoid ({meth})"] = np.array(
            [composition_medoid_index(row, d) for row, d in zip(samples, distances(meth))]
        )
    if a.variants:  # target-free selectors built on the medoid (the best-alignment distance matrices)
        from s2s.geometry.metrics import bond_sanity

        picks.update(medoid_variants(samples, distances("best"), bond_sanity))
    if a.cluster:  # the largest signature cluster's medoid, as s2s predict reported its top candidate
        from s2s.ensembles.describe import cluster

        picks["largest-cluster medoid"] = np.array(
            [cluster(row, d, split_distance=None)[0]["representative"] for row, d in zip(samples, distances("best"))]
        )
    if a.screened:  # the medoid among the samples with the best forward-model scores
        from s2s.ensembles.pick import screened_medoid_index

        for keep in a.screened:
            picks[f"medoid of fwd top {keep:g}"] = np.array(
                [screened_medoid_index(sc, d, keep) for sc, d in zip(sel["scores"], distances("best"))]
            )
    picks["oracle"] = sel["oracle_of_k"]
    if a.anchor:
        picks.update(anchored_picks(samples, spectra, recs, fit, a.anchor, distances("best")))
    tm = template_match(
        spectra,
        [r.structure_id for r in recs],
        fit.spectra(),
        [r.structure_id for r in fit.records],
        fit.environments(),
    )
    rows = {"template matching": [evaluate_pair(t, g, method="paper") for t, g in zip(targets, tm.environments)]}
    rows.update({name: [sel["rows"][i][int(j)] for i, j in enumerate(p)] for name, p in picks.items()})
    if a.template_medoid:
        rows.update(template_medoids(samples, spectra, recs, targets, fit, a.template_medoid, distances("best")))
    if a.average:  # not a pick: the mean structure about the medoid (best alignment)
        centre = [medoid_of_distances(d)[0] for d in distances("best")]
        for cut in (None, 0.5):
            t0 = time.process_time()
            envs = [consensus_average(row, int(c), max_rmsd=cut) for row, c in zip(samples, centre)]
            name = "mean about medoid" + ("" if cut is None else f" (<= {cut} Å)")
            rows[name] = [evaluate_pair(t, g, method="paper") for t, g in zip(targets, envs)]
            n_avg = np.mean([e.meta["n_averaged"] for e in envs])
            print(f"{name}: {time.process_time() - t0:.0f} s CPU, {n_avg:.1f} samples averaged", flush=True)
    print(f"{'pick':22s}" + "".join(f"{k:>21s}" for k in KEYS))
    for name, rr in rows.items():
        tab = summary_table([{"index": i, "sample": 0, "paper": r} for i, r in enumerate(rr)], "paper")
        print(f"{name:22s}" + "".join(f"{tab[k]:21.3f}" for k in KEYS))
    print("\nthe first shell on its own (s2s.geometry.metrics.first_shell_errors; Å, the angle in degrees)")
    cols = FIRST_SHELL_KEYS + ("same_shell1_count",)
    print(f"{'pick':22s}" + "".join(f"{k:>24s}" for k in cols))
    for name, rr in rows.items():
        tab = first_shell_table([{"paper": r} for r in rr], "paper")
        print(f"{name:22s}" + "".join(f"{tab[k]:24.3f}" for k in cols))
    groups = [r.structure_id for r in recs]
    print(f"\n{describe(n_groups=len(set(groups)))} (s2s.studies.bootstrap)")
    ci_keys = ("rmsd_shell1", "species_accuracy", "validity")
    print(f"{'pick':22s}" + "".join(f"{k:>21s}" for k in ci_keys))
    for name, rr in rows.items():
        ci = summary_intervals([{"index": i, "paper": r} for i, r in enumerate(rr)], groups, keys=ci_keys)
        print(f"{name:22s}" + "".join(f"{f'{ci[k][0]:.3f}-{ci[k][1]:.3f}':>21s}" for k in ci_keys))
    return 0


def template_medoids(samples, spectra, recs, targets, fit, ms, distances) -> dict[str, list[dict]]:
    """Rows of two retrieval-consensus methods per M in ``ms`` (best alignment for the medoid, paper
    alignment for the scores): :func:`s2s.retrieval.template.template_consensus` (the medoid of the
    top-M spectral matches in the fit split, other structures only), and the medoid of the K samples
    together with those M.  The samples' own (K, K) ``distances`` are reused; only the pairs with a
    template are aligned."""
    from s2s.geometry.align import align
    from s2s.retrieval.neighbours import nearest_by_mse
    from s2s.retrieval.template import template_consensus

    envs = fit.environments()
    q_groups, r_groups = [r.structure_id for r in recs], [r.structure_id for r in fit.records]
    idx, _ = nearest_by_mse(spectra, fit.spectra(), q_groups, r_groups, k=max(ms))
    idx = np.asarray(idx).reshape(len(recs), -1)
    out: dict[str, list[dict]] = {}
    for m in sorted(set(ms)):
        t0 = time.process_time()
        alone = template_consensus(spectra, q_groups, fit.spectra(), r_groups, envs, k=m).environments
        mixed = []
        for i, (row, d_ss) in enumerate(zip(samples, distances)):
            both = list(row) + [envs[j] for j in idx[i, :m]]
            k = len(row)
            d = np.zeros((k + m, k + m))
            d[:k, :k] = d_ss
            for a_ in range(k + m):
                for b_ in range(max(a_ + 1, k), k + m):
                    d[a_, b_] = d[b_, a_] = align(both[a_], both[b_], method="best").rmsd
            mixed.append(both[medoid_of_distances(d)[0]])
        out[f"medoid of top-{m} templates"] = [evaluate_pair(t, g, method="paper") for t, g in zip(targets, alone)]
        out[f"medoid of samples + top-{m}"] = [evaluate_pair(t, g, method="paper") for t, g in zip(targets, mixed)]
        print(f"template medoids (top {m}): {time.process_time() - t0:.0f} s CPU", flush=True)
    return out


def anchored_picks(samples, spectra, recs, fit, ms, distances) -> dict[str, np.ndarray]:
    """Retrieval-anchored picks (:func:`s2s.ensembles.pick.anchored_index`) for each M in ``ms``:
    anchors = the M fit-split environments with the nearest spectra (other structures only), alone
    (weight 0) and with the medoid score added (weight 1)."""
    from s2s.ensembles.pick import anchor_distances, anchored_index
    from s2s.retrieval.neighbours import nearest_by_mse

    envs = fit.environments()
    t0 = time.process_time()
    idx, _ = nearest_by_mse(
        spectra, fit.spectra(), [r.structure_id for r in recs], [r.structure_id for r in fit.records], k=max(ms)
    )
    idx = np.asarray(idx).reshape(len(recs), -1)
    out: dict[str, np.ndarray] = {}
    full = [anchor_distances(row, [envs[j] for j in idx[i]]) for i, row in enumerate(samples)]  # (K, max M)
    for m in sorted(set(ms)):
        scores = [d[:, :m].mean(axis=1) for d in full]
        out[f"anchored (top {m})"] = np.array([anchored_index(s) for s in scores])
        out[f"anchored (top {m}) + medoid"] = np.array(
            [anchored_index(s, d, consensus_weight=1.0) for s, d in zip(scores, distances)]
        )
    print(f"anchored picks {sorted(set(ms))}: {time.process_time() - t0:.0f} s CPU", flush=True)
    return out


def medoid_variants(samples, distances, sanity, radius: float = 0.3) -> dict[str, np.ndarray]:
    """Picks per site of target-free variants of the medoid, from each site's (K, K) distance matrix
    (``distances[i]``, Å) and ``sanity(env)["sane"]`` (:func:`s2s.geometry.metrics.bond_sanity`):
    the medoid by median distance; the medoid among the bond-sane samples (all when none is sane);
    the densest sample (most others within ``radius`` Å, ties by mean distance)."""
    out: dict[str, list[int]] = {"medoid, median distance": [], "medoid of bond-sane samples": [], "densest": []}
    for row, d in zip(samples, distances):
        d = np.asarray(d, dtype=float)
        d = np.where(np.isfinite(d), d, 1e3)
        k = len(row)
        off = d + np.diag(np.full(k, np.nan))
        out["medoid, median distance"].append(int(np.argmin(np.nanmedian(off, axis=1))) if k > 1 else 0)
        sane = [j for j, e in enumerate(row) if sanity(e)["sane"]] or list(range(k))
        sub = d[np.ix_(sane, sane)]
        out["medoid of bond-sane samples"].append(sane[int(np.argmin(sub.mean(axis=1)))])
        close = (d < radius).sum(axis=1) - 1
        out["densest"].append(int(np.lexsort((d.mean(axis=1), -close))[0]))
    return {k: np.array(v) for k, v in out.items()}


if __name__ == "__main__":
    raise SystemExit(main())
