"""How far is a site's first-principles spectrum from its xTB spectrum, per reference flavour?

Three sets of (xTB, GPAW) spectra of the same sites, compared like :func:`s2s.studies.transfer.spectral_gap`
(unit-area grid spectra, RMS over the 200 points in eV^-1; Pearson r per site):

* ``gamma@0.5``: the reference set's 32 records (Gamma only, FWHM 0.5 eV: what ``transfer`` and notebook 07 use);
* ``gamma@1.0``: the same sticks broadened at FWHM 1.0 eV (the broadening alone);
* ``kmesh@1.0``: the dataset sites of ``data/reference_sites`` computed with the build settings (XAS bands on
  a k-mesh, FWHM 1.0 eV) against the dataset's xTB spectra of the same sites.

``rms_nearest_other`` is the median distance from a site's xTB spectrum to the nearest xTB spectrum of another
site *of the whole dataset* (2,352 sites), the scale on which the model tells sites apart.

    python benchmarks/reference_vs_xtb.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from s2s.dataset import Dataset
from s2s.resources import resolve
from s2s.simulate.gpaw_ref import broaden_to_grid, load_record, record_path
from s2s.simulate.reference_sites import ReferenceStore, reference_records
from s2s.studies.identifiability import pair_rms
from s2s.studies.transfer import spectral_gap, transfer_sites


def summary(xtb: np.ndarray, gpaw: np.ndarray, all_xtb: np.ndarray) -> dict:
    r = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(xtb, gpaw)]
    rms = np.sqrt(np.mean((xtb - gpaw) ** 2, axis=1))
    d = pair_rms(xtb, all_xtb)
    d[d < 1e-12] = np.inf  # the site itself
    return {
        "n": len(xtb),
        "pearson_median": float(np.median(r)),
        "pearson_q25_q75": [float(np.quantile(r, 0.25)), float(np.quantile(r, 0.75))],
        "rms_xtb_gpaw": float(np.median(rms)),
        "rms_nearest_other_xtb": float(np.median(d.min(1))),
        "ratio": float(np.median(rms) / np.median(d.min(1))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    ds = Dataset.load(resolve("data"))
    all_xtb = ds.spectra()
    ref = resolve("reference")
    sites = transfer_sites(ref, resolve("xtb_cache"))
    rows = {}
    x = np.stack([s.xtb for s in sites])
    rows["gamma@0.5"] = summary(x, np.stack([s.gpaw for s in sites]), all_xtb)
    g1 = []
    for s in sites:
        rec = load_record(record_path(ref / "gpaw", s.structure_id, s.site_index))
        g1.append(broaden_to_grid(np.asarray(rec["energies_eV"]), np.asarray(rec["intensity"]), 1.0))
    rows["gamma@1.0"] = summary(x, np.stack(g1), all_xtb)
    recs = reference_records(ds, ReferenceStore(resolve("reference_sites")))
    if len(recs) >= 2:
        by_key = {r.key: r for r in ds.records}
        xk = np.stack([by_key[r.key].spectrum for r in recs])
        gk = np.stack([r.spectrum for r in recs])
        rows["kmesh@1.0"] = summary(xk, gk, all_xtb)
        rows["kmesh@1.0"]["spectral_gap_within_set"] = spectral_gap(
            [type(sites[0])(r.structure_id, r.site_index, r.environment, a_, b_) for r, a_, b_ in zip(recs, xk, gk)]
        )
    print("| spectra | sites | Pearson r median (IQR) | RMS xTB-GPAW | RMS xTB nearest other site | ratio |")
    print("|---|---|---|---|---|---|")
    for k, v in rows.items():
        q = v["pearson_q25_q75"]
        print(
            f"| {k} | {v['n']} | {v['pearson_median']:.3f} ({q[0]:.3f}-{q[1]:.3f}) | {v['rms_xtb_gpaw']:.4f} | "
            f"{v['rms_nearest_other_xtb']:.4f} | {v['ratio']:.1f} |"
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
