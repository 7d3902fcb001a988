"""Does the ensemble spread of ``s2s predict`` mean something?  Calibration on the test split.

    python scripts/calibration.py                         # shipped model, test split, K = 8
    python scripts/calibration.py --limit 10 --k 4        # quick look
    python scripts/calibration.py --write-results         # + figures/results.json predict_calibration and a figure

For every test spectrum, K candidates are generated as ``s2s predict`` does (its default
sampler and steps, atom counts drawn from p(N | spectrum); ``--natoms target`` uses the
target's count instead), batched by atom count (:func:`s2s.model.sample.generate`, ``buckets=True``).  Per case:

* spread (no target needed): mean pairwise distance of the K candidates (the rotation-free
  radial distance of :func:`s2s.ensembles.describe.pairwise_radial`, what predict reports), the std
  of their first-shell CN and of their mean first-shell Si-O distance; with ``--aligned``
  also the mean pairwise aligned RMSD (slow: K(K-1)/2 alignments per case); and, as a
  non-ensemble comparison, the OOD percentile of the spectrum (:mod:`s2s.retrieval.ood`);
* error (against the target): the mean over the K candidates of the aligned RMSD
  (:func:`s2s.geometry.metrics.evaluate_pair`, paper alignment) over all atoms and over the first
  shell, and of the first-shell CN error.

Reported: Spearman rank correlations spread vs error over the test cases (headline
``calibration_spearman`` = mean pairwise aligned RMSD (with ``--aligned``, else the radial
distance) vs mean RMSD over all atoms, with a bootstrap 95 % interval), and ``cn_coverage`` = share of test cases
whose target
first-shell CN is among the K candidates' first-shell CNs (also for shell 2 and for the
first-shell composition).  Numbers depend on the model and on K; the command prints them.
The statistics live in :mod:`s2s.studies.calibration`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from s2s.model.diffusion import SAMPLERS
from s2s.resources import default_path
from s2s.studies.calibration import bootstrap_ci, case_stats, spearman_table

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from s2s.predict import DEFAULT_SAMPLER, DEFAULT_STEPS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_path("model_xtb"), help="default: the xTB generator")
    ap.add_argument("--data", type=Path, default=default_path("data"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="first LIMIT records of the split (default all)")
    ap.add_argument(
        "--stride",
        type=int,
        default=1,
        help="every STRIDE-th record of the split (a subset spread over all structures; default 1)",
    )
    ap.add_argument("--k", type=int, default=8, help="candidates per spectrum (default 8)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=list(SAMPLERS))
    ap.add_argument(
        "--natoms",
        default="predict",
        choices=["predict", "target"],
        help="atom counts: p(N | s) as in predict (default) or the target's",
    )
    ap.add_argument("--aligned", action="store_true", help="also the aligned pairwise RMSD as a spread (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--write-results",
        action="store_true",
        help="write figures/results.json 'predict_calibration' and figures/predict_calibration.png/.svg",
    )
    ap.add_argument("--results", type=Path, default=ROOT / "figures/results.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from tqdm.auto import tqdm

    from s2s.dataset import Dataset
    from s2s.files import file_sha256
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    model = load_model(a.model)
    recs = list(Dataset.load(a.data).split(a.split))[:: a.stride][: a.limit]
    spectra = np.stack([r.spectrum for r in recs])
    counts = None if a.natoms == "predict" else [r.environment.n_atoms for r in recs]
    print(f"{len(recs)} {a.split} spectra x K = {a.k}, {a.sampler} {a.steps} steps, atom counts: {a.natoms}")
    t0 = time.perf_counter()
    gen = generate(model, spectra, counts, n_samples=a.k, seed=a.seed, n_steps=a.steps, sampler=a.sampler, buckets=True)
    t_gen = time.perf_counter() - t0
    rows = [
        case_stats(r.environment, envs, a.aligned)
        for r, envs in tqdm(list(zip(recs, gen)), desc="scoring", unit="case")
    ]
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    # does the OOD percentile (predict's warning) also rank the errors?
    from s2s.retrieval.ood import OODScorer

    tr = Dataset.load(a.data).train
    col["spread_ood_percentile"] = OODScorer.fit(tr.spectra(), [r.structure_id for r in tr]).score(spectra)[
        "percentile"
    ]

    spreads = [k for k in col if k.startswith("spread_")]
    errors = ["err_rmsd_all", "err_rmsd_shell1", "err_cn1_pct"]
    table = spearman_table(col, spreads, errors)
    print(f"\nSpearman rank correlation, spread (rows) vs error (columns), n = {len(rows)} cases")
    print(f"{'':<18}" + "".join(f"{e:>18}" for e in errors))
    for s in spreads:
        print(f"{s:<18}" + "".join(f"{table[s][e]['spearman']:>12.3f} (n={table[s][e]['n']:>3})" for e in errors))
    head_spread = "spread_aligned" if a.aligned else "spread_radial"
    head = table[head_spread]["err_rmsd_all"]["spearman"]
    lo, hi = bootstrap_ci(col[head_spread], col["err_rmsd_all"])
    cov = {k: float(col[k].mean()) for k in ("cn1_covered", "cn2_covered", "first_shell_covered")}
    print(
        f"\ncalibration_spearman ({head_spread} vs mean RMSD, all atoms): {head:.3f}  (bootstrap 95 % {lo:.3f} .. "
        f"{hi:.3f})"
    )
    print(
        f"cn_coverage (target 1st-shell CN among the K candidates): {cov['cn1_covered']:.3f}; 2nd shell "
        f"{cov['cn2_covered']:.3f}; "
        f"1st-shell composition {cov['first_shell_covered']:.3f}"
    )
    print(
        f"mean RMSD (all atoms) {np.nanmean(col['err_rmsd_all']):.3f} Å, best-of-K "
        f"{np.nanmean(col['best_rmsd_all']):.3f} Å; "
        f"generation {t_gen / (len(recs) * a.k):.3f} s/structure"
    )
    if a.write_results:
        from s2s.plots import save_figure, style
        from s2s.studies.results import update_results

        pred = {"calibration_spearman": head, "cn_coverage": cov["cn1_covered"]}
        pred["calibration"] = {
            "n": len(rows),
            "K": a.k,
            "sampler": a.sampler,
            "steps": a.steps,
            "natoms": a.natoms,
            "seed": a.seed,
            "split": a.split,
            "stride": a.stride,
            "limit": a.limit,
            "model": str(a.model.relative_to(ROOT) if a.model.is_relative_to(ROOT) else a.model),
            "model_sha256": file_sha256(a.model),
            "spread": (
                "mean pairwise aligned RMSD of the K candidates (paper alignment; "
                "predict's spread.mean_pairwise_rmsd_aligned), Å"
                if a.aligned
                else "mean pairwise radial distance (s2s.ensembles.describe.pairwise_radial), Å"
            ),
            "error": "mean over the K candidates of the aligned RMSD over all atoms (paper alignment), Å",
            "calibration_spearman_ci95": [lo, hi],
            "coverage": cov,
            "spearman_table": table,
            "mean_rmsd_all": float(np.nanmean(col["err_rmsd_all"])),
            "best_of_k_rmsd_all": float(np.nanmean(col["best_rmsd_all"])),
        }
        update_results("predict_calibration", pred, a.results)
        import matplotlib.pyplot as plt

        with style():
            fig, axs = plt.subplots(1, 2, figsize=(8.4, 3.6))
            axs[0].scatter(col[head_spread], col["err_rmsd_all"], s=14, alpha=0.7)
            axs[0].set_xlabel(
                "ensemble spread: mean pairwise " + ("aligned RMSD (Å)" if a.aligned else "radial distance (Å)")
            )
            axs[0].set_ylabel("mean RMSD to target (Å)")
            axs[0].set_title(f"Spearman {head:.2f} (n = {len(rows)}, K = {a.k})", fontsize=9)
            cov1 = col["cn1_covered"].astype(bool)
            axs[1].hist(
                [col["spread_cn1_std"][cov1], col["spread_cn1_std"][~cov1]],
                bins=10,
                label=["target CN1 covered", "not covered"],
            )
            axs[1].set_xlabel("std of first-shell CN in the ensemble")
            axs[1].set_ylabel("test cases")
            axs[1].legend(fontsize=7)
            fig.tight_layout()
            save_figure(fig, ROOT / "figures" / "predict_calibration", close=True)
        print(
            f"wrote predict_calibration (calibration_spearman, cn_coverage) to {a.results} and "
            "figures/predict_calibration.png"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
