"""Do first-principles spectra separate xTB's spectral twins?

Spectral twins (:mod:`s2s.studies.identifiability`) are sites of different training structures whose
xTB spectra differ by only 0.001-0.004 eV^-1 (RMS, unit-area spectra) although their environments do
not match (paper-aligned 1st-shell RMSD >= 0.15 Å).  This script draws such pairs (seeded, cells of at
most ``--max-atoms`` atoms in the GPAW supercell so that the test stays cheap), computes both sites'
GPAW spectra into the dataset reference store (data/reference_sites, build settings of
:mod:`s2s.simulate.reference_sites`) and compares, per xTB bin, the pairs' RMS difference under each
method with the typical distance from a site to its nearest other site *under the same method*, over
all sites that have both spectra.  A ratio (twin distance / nearest-other distance) that is much
larger under GPAW than under xTB means the reference method tells the twins apart.

    python benchmarks/reference_twins.py run --pairs 24          # computes the missing GPAW spectra
    python benchmarks/reference_twins.py report                  # the table (docs/model.md)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from s2s.dataset import Dataset
from s2s.geometry.metrics import evaluate_pair
from s2s.resources import resolve
from s2s.simulate.reference_build import PlannedSite, build, supercell_atoms
from s2s.simulate.reference_sites import BUILD_SETTINGS, ReferenceStore
from s2s.splits import validation_split
from s2s.studies.identifiability import pair_rms

BINS = ((0.001, 0.002), (0.002, 0.004))


def twin_pairs(
    ds: Dataset, n_pairs: int, max_atoms: int, min_shell1: float, seed: int, max_per_couple: int = 2
) -> list[dict]:
    """``n_pairs`` twin pairs (half per bin of :data:`BINS`) among the fit split's sites, drawn with ``seed``;
    at most ``max_per_couple`` pairs from one couple of structures (so that a few couples do not dominate)."""
    fit, _ = validation_split(ds.train)
    recs = fit.records
    atoms = {sid: supercell_atoms(ds.structure(sid)) for sid in {r.structure_id for r in recs}}
    keep = [i for i, r in enumerate(recs) if atoms[r.structure_id] <= max_atoms]
    spec = np.stack([recs[i].spectrum for i in keep])
    d = pair_rms(spec)
    iu, ju = np.triu_indices(len(keep), 1)
    other = np.array([recs[keep[a]].structure_id != recs[keep[b]].structure_id for a, b in zip(iu, ju)])
    rng = np.random.default_rng(seed)
    out = []
    for lo, hi in BINS:
        cand = np.flatnonzero(other & (d[iu, ju] >= lo) & (d[iu, ju] < hi))
        rng.shuffle(cand)
        taken, per_couple = 0, {}
        for c in cand:
            a, b = recs[keep[iu[c]]], recs[keep[ju[c]]]
            couple = tuple(sorted((a.structure_id, b.structure_id)))
            if per_couple.get(couple, 0) >= max_per_couple:
                continue
            ev = evaluate_pair(a.environment, b.environment, method="paper")
            if not ev["rmsd_shell1"] >= min_shell1:
                continue
            out.append(
                {
                    "bin": [lo, hi],
                    "a": [a.structure_id, a.site_index],
                    "b": [b.structure_id, b.site_index],
                    "xtb_rms": float(d[iu[c], ju[c]]),
                    "rmsd_shell1": float(ev["rmsd_shell1"]),
                    "atoms": [atoms[a.structure_id], atoms[b.structure_id]],
                }
            )
            taken += 1
            per_couple[couple] = per_couple.get(couple, 0) + 1
            if taken == n_pairs // len(BINS):
                break
    return out


def cmd_run(a: argparse.Namespace, ds: Dataset, store: ReferenceStore) -> int:
    pairs = twin_pairs(ds, a.pairs, a.max_atoms, a.min_shell1, a.seed)
    pairs = sorted(pairs, key=lambda p: max(p["atoms"]))  # whole pairs early, cheapest first
    sites = []
    for p in pairs:
        for sid, k in (p["a"], p["b"]):
            if (sid, k) not in [(s.structure_id, s.site_index) for s in sites]:
                sites.append(PlannedSite(sid, int(k), "train-twins", 0))
    print(f"{len(pairs)} pairs, {len(sites)} sites", flush=True)
    deadline = time.time() + 3600 * a.hours if a.hours else None
    rep = build(sites, ds.structure, store, BUILD_SETTINGS, deadline=deadline)
    print(rep.summary())
    return 0


def cmd_report(a: argparse.Namespace, ds: Dataset, store: ReferenceStore) -> int:
    pairs = twin_pairs(ds, a.pairs, a.max_atoms, a.min_shell1, a.seed)
    ref = store.sites()
    by_key = {r.key: r for r in ds.records}
    both = [k for k in ref if k in by_key]  # every site with both spectra
    idx = {k: i for i, k in enumerate(both)}
    if a.fwhm:  # the stored sticks broadened again (the grid spectra are at the build's FWHM)
        from s2s.simulate.gpaw_ref import broaden_to_grid

        g = np.stack([broaden_to_grid(ref[k].stick_energy, ref[k].stick_intensity, a.fwhm) for k in both])
    else:
        g = np.stack([ref[k].grid_spectrum.astype(float) for k in both])
    x = np.stack([by_key[k].spectrum for k in both])
    groups = np.array([k[0] for k in both])
    nn = {}
    for name, s in (("xtb", x), ("gpaw", g)):
        d = pair_rms(s)
        d[groups[:, None] == groups[None, :]] = np.inf  # nearest site of *another* structure
        nn[name] = float(np.median(d.min(1)))
        nn[name + "_typical"] = float(np.median(d[np.isfinite(d)]))  # any two sites of different structures
    print(
        f"{len(both)} sites with both spectra; median nearest other-structure site: xTB {nn['xtb']:.4f}, "
        f"GPAW {nn['gpaw']:.4f} eV^-1; median over all pairs of different structures: xTB {nn['xtb_typical']:.4f}, "
        f"GPAW {nn['gpaw_typical']:.4f} eV^-1"
    )
    print(
        "| xTB bin (eV^-1) | pairs | 1st-shell RMSD (Å) | xTB RMS | GPAW RMS | xTB / NN(xTB) | GPAW / NN(GPAW) "
        "| pairs with GPAW ratio > 1 | xTB / typical | GPAW / typical |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for lo, hi in BINS:
        ps = [p for p in pairs if p["bin"] == [lo, hi] and tuple(p["a"]) in idx and tuple(p["b"]) in idx]
        if not ps:
            continue
        xr = np.array([np.sqrt(np.mean((x[idx[tuple(p["a"])]] - x[idx[tuple(p["b"])]]) ** 2)) for p in ps])
        gr = np.array([np.sqrt(np.mean((g[idx[tuple(p["a"])]] - g[idx[tuple(p["b"])]]) ** 2)) for p in ps])
        row = {
            "bin": [lo, hi],
            "pairs": len(ps),
            "rmsd_shell1": float(np.mean([p["rmsd_shell1"] for p in ps])),
            "xtb_rms_median": float(np.median(xr)),
            "gpaw_rms_median": float(np.median(gr)),
            "xtb_ratio_median": float(np.median(xr) / nn["xtb"]),
            "gpaw_ratio_median": float(np.median(gr) / nn["gpaw"]),
            "gpaw_ratio_above_1": float(np.mean(gr / nn["gpaw"] > 1.0)),
            "xtb_over_typical": float(np.median(xr) / nn["xtb_typical"]),
            "gpaw_over_typical": float(np.median(gr) / nn["gpaw_typical"]),
        }
        rows.append(row)
        print(
            f"| {lo:.3f}-{hi:.3f} | {len(ps)} | {row['rmsd_shell1']:.2f} | {row['xtb_rms_median']:.4f} | "
            f"{row['gpaw_rms_median']:.4f} | {row['xtb_ratio_median']:.2f} | {row['gpaw_ratio_median']:.2f} | "
            f"{row['gpaw_ratio_above_1']:.2f} | {row['xtb_over_typical']:.2f} | {row['gpaw_over_typical']:.2f} |"
        )
    if a.json:
        a.json.write_text(
            json.dumps({"nearest_other_median": nn, "n_sites_both": len(both), "rows": rows, "pairs": pairs}, indent=1)
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["run", "report"])
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--max-atoms", type=int, default=96, help="largest GPAW supercell of a twin site")
    ap.add_argument("--min-shell1", type=float, default=0.15, help="Å: the environments must differ this much")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hours", type=float, default=0.0)
    ap.add_argument("--fwhm", type=float, default=0.0, help="report: broaden the GPAW sticks at this FWHM (eV)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    ds = Dataset.load(resolve("data"))
    store = ReferenceStore(resolve("reference_sites", must_exist=False))
    return {"run": cmd_run, "report": cmd_report}[a.cmd](a, ds, store)


if __name__ == "__main__":
    sys.exit(main())
