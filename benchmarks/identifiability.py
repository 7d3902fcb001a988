"""How far does an xTB O K-edge spectrum determine its environment?  No model involved.

    python benchmarks/identifiability.py                  # training split, 300 pairs per bin (~1 min)
    python benchmarks/identifiability.py --n-per-bin 1000 --json runs/identifiability.json
    python benchmarks/identifiability.py --n-per-bin 500 --mirror      # mirror images counted equal

Prints two markdown tables (docs/model.md, "How far does the spectrum determine the environment?"):

* spectral twins (:func:`s2s.studies.identifiability.twin_table`): pairs of training-split sites
  from different structures, binned by the RMS difference of their spectra (eV^-1), and how far
  their environments are apart (paper alignment, one site as target);
* the retrieval oracle (:func:`s2s.studies.identifiability.retrieval_oracle`): validation sites
  against the fit-split templates, the best 1st-shell RMSD among the top k spectral matches;
* with ``--forward PATH``: how often that forward model tells a validation site from a fit-split
  twin (:func:`s2s.studies.identifiability.twin_discrimination`), the choice a forward-model pick
  among candidates has to make (the shipped forward model was trained on the fit split, so it
  predicts the decoys in-sample: a hard test for it).

Only the training split is read (the test split is kept for the headline).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from s2s.dataset import Dataset
from s2s.resources import default_path
from s2s.studies.ablation import load_split
from s2s.studies.identifiability import DEFAULT_RMS_EDGES, retrieval_oracle, twin_discrimination, twin_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_path("data")))
    ap.add_argument("--n-per-bin", type=int, default=300, help="pairs scored per spectral bin (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--formula",
        default=None,
        help="spectral twins among the sites of this formula only (e.g. SiO2; the retrieval oracle still uses all)",
    )
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10, 20], help="top-k of the retrieval oracle")
    ap.add_argument("--forward", type=Path, default=None, help="also the twin discrimination of this forward model")
    ap.add_argument("--json", type=Path, default=None, help="also write both tables here")
    ap.add_argument(
        "--mirror",
        action="store_true",
        help="let the paper alignment also mirror (a spectrum is the same for an environment and its mirror image)",
    )
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    train = Dataset.load(a.data).train
    if a.formula:
        train = train.filter(lambda r: r.formula == a.formula)
        if not len(train):
            raise SystemExit(f"no training site has formula {a.formula!r}")
    t0 = time.process_time()
    rows = twin_table(
        train.spectra(),
        train.environments(),
        [r.structure_id for r in train.records],
        DEFAULT_RMS_EDGES,
        n_per_bin=a.n_per_bin,
        seed=a.seed,
        allow_reflection=a.mirror,
    )
    mirror = ", mirror images counted equal" if a.mirror else ""
    print(f"spectral twins: {len(train)} training sites{mirror}, {time.process_time() - t0:.0f} s CPU\n")
    print(
        "| RMS spectral difference (eV^-1) | pairs | scored | same atom count | 1st shell, paper-aligned (Å) "
        "| median | > 0.15 Å | all atoms (Å) | 1st shell on itself (Å) | 1st-shell radial (Å) | angle (°) | species |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lo']:.4f}-{r['hi']:.4f} | {r['n_pairs']} | {r['n_scored']} | {r['same_atoms']:.2f} "
            f"| {r['rmsd_shell1']:.3f} | {r['rmsd_shell1_median']:.3f} | {r['frac_shell1_above']:.2f} "
            f"| {r['rmsd_all']:.3f} | {r['rmsd_shell1_local']:.3f} | {r['rmsd_shell1_radial']:.3f} "
            f"| {r['angle_shell1_error_deg']:.1f} | {r['species_match']:.2f} |"
        )
    fit, val = load_split(a.data)
    t0 = time.process_time()
    orc = retrieval_oracle(
        val.spectra(),
        val.environments(),
        [r.structure_id for r in val.records],
        fit.spectra(),
        fit.environments(),
        [r.structure_id for r in fit.records],
        ks=a.ks,
        allow_reflection=a.mirror,
    )
    cpu = time.process_time() - t0
    print(f"\nretrieval oracle: {orc['n']} validation sites, fit-split templates, {cpu:.0f} s CPU\n")
    print("| top k spectral matches | " + " | ".join(str(k) for k in orc["k"]) + " |")
    print("|---|" + "---|" * len(orc["k"]))
    print("| best 1st-shell RMSD (Å) | " + " | ".join(f"{v:.3f}" for v in orc["k"].values()) + " |")
    print(f"(template matching = top 1; its median {orc['median_top1']:.3f} Å)")
    out = {"twins": rows, "retrieval_oracle": orc}
    if a.forward:
        from s2s.forward.model import ForwardModel

        fm = ForwardModel.load(a.forward)
        disc = twin_discrimination(
            val.spectra(),
            fm.predict(val.environments()),
            [r.structure_id for r in val.records],
            fit.spectra(),
            fm.predict(fit.environments()),
            [r.structure_id for r in fit.records],
        )
        out["forward_discrimination"] = {"model": str(a.forward), "bins": disc}
        print(f"\nforward model {a.forward}: validation site against a fit-split twin\n")
        print("| RMS spectral difference (eV^-1) | pairs | forward model prefers the truth |")
        print("|---|---|---|")
        for b in disc:
            print(f"| {b['lo']:.4f}-{b['hi']:.4f} | {b['n_pairs']} | {b['accuracy']:.2f} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=float))
        tmp.replace(a.json)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
