"""OOD score (s2s.retrieval.ood) of held-out crystalline test spectra vs amorphous spectra.

    python scripts/ood_report.py                    # prints the table
    python scripts/ood_report.py --write-results    # + figures/results.json predict_ood

The scorer is fitted on the training split (k = 5 nearest training spectra, leave-one-
structure-out reference distribution, flag above the 95th percentile) exactly as
``s2s predict`` uses it.  Scored: the test split (in distribution: ~5 % flagged expected),
the amorphous set (``data/amorphous/amorphous.h5``) per composition x of SiO_x, and the
GPAW reference spectra (another simulator: ``data/reference/gpaw/*.json`` grid spectra).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

from s2s.resources import default_path

ROOT = Path(__file__).resolve().parents[1]


def _row(name: str, s: dict, ref: np.ndarray | None = None) -> dict:
    """Summary of scores; ``auroc`` = P(score of this set > score of a test spectrum) (ties half)."""
    p = s["percentile"]
    out = {
        "n": int(p.size),
        "median_percentile": float(np.median(p)),
        "flagged": float(np.mean(s["flag"])),
        "median_ratio": float(np.median(s["ratio"])),
    }
    if ref is not None:
        d = s["distance"][:, None] - ref[None, :]
        out["auroc_vs_test"] = float(np.mean(d > 0) + 0.5 * np.mean(d == 0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_path("data"))
    ap.add_argument("--amorphous", type=Path, default=ROOT / "data/amorphous/amorphous.h5")
    ap.add_argument("--gpaw", default=str(ROOT / "data/reference/gpaw/*.json"))
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=95.0)
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--results", type=Path, default=ROOT / "figures/results.json")
    a = ap.parse_args(argv)

    from s2s.dataset import Dataset
    from s2s.retrieval.ood import OODScorer

    ds = Dataset.load(a.data)
    tr = ds.train
    sc = OODScorer.fit(tr.spectra(), [r.structure_id for r in tr], k=a.k, threshold=a.threshold)
    s_test = sc.score(ds.test.spectra())
    ref = s_test["distance"]
    rows = {"test (crystalline, held-out structures)": _row("test", s_test)}
    if a.amorphous.exists():
        am = Dataset.load(a.amorphous)
        xs = np.array([float((r.meta or {}).get("composition_x", r.x)) for r in am])
        s = sc.score(am.spectra())
        rows["amorphous (all)"] = _row("amorphous", s, ref)
        if np.any(xs < 2):
            rows["amorphous Si-rich (x < 2)"] = _row("Si-rich", {k: v[xs < 2] for k, v in s.items()}, ref)
        for x in np.unique(xs):
            sel = xs == x
            rows[f"amorphous SiO{x:g}"] = _row(f"SiO{x:g}", {k: v[sel] for k, v in s.items()}, ref)
    grids = []
    for f in sorted(glob.glob(a.gpaw)):
        try:
            g = json.loads(Path(f).read_text()).get("grid_spectrum")
        except (OSError, json.JSONDecodeError):
            continue
        if g is not None and len(g) == 200 and np.all(np.isfinite(g)):
            grids.append(g)
    if grids:
        rows["GPAW reference (other simulator)"] = _row("gpaw", sc.score(np.array(grids)), ref)
    print(
        f"OOD score: k = {a.k}, threshold = {a.threshold:g}th percentile of the training LOSO distribution "
        f"({len(tr)} training spectra, edge = {sc.edge:.4f} /eV)"
    )
    print(f"{'set':<42}{'n':>5}{'median pct':>12}{'flagged':>9}{'median ratio':>14}{'AUROC vs test':>15}")
    for name, r in rows.items():
        auc = f"{r['auroc_vs_test']:>15.3f}" if "auroc_vs_test" in r else f"{'':>15}"
        print(
            f"{name:<42}{r['n']:>5}{r['median_percentile']:>12.1f}{r['flagged']:>9.2f}{r['median_ratio']:>14.2f}{auc}"
        )
    if a.write_results:
        from s2s.studies.results import update_results

        ood = {
            "k": a.k,
            "threshold_percentile": a.threshold,
            "n_train": len(tr),
            "edge_rms_per_eV": sc.edge,
            "sets": rows,
        }
        update_results("predict_ood", ood, a.results)
        print(f"wrote predict_ood to {a.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
