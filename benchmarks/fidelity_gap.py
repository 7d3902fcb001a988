"""How far apart are a site's xTB and reference-method (GPAW) spectra, next to how far apart two sites are?

    python benchmarks/fidelity_gap.py                       # every dataset site with a reference spectrum
    python benchmarks/fidelity_gap.py --reference-store DIR

For each site of the dataset that has both spectra (data/reference_sites at the build's settings): the
Pearson r between its xTB and GPAW spectra, and their RMS difference (eV^-1, on the model's grid, what the
model sees), against (a) the RMS difference between the site's xTB spectrum and its nearest xTB spectrum of
another structure (the whole dataset), and (b) the median RMS difference of random pairs of xTB spectra.
Printed: medians and 10/90 % quantiles.  docs/model.md measured "a site's GPAW and xTB spectra differ 6x
more than two sites' xTB spectra do" on the 32-site reference set (Gamma-only supercells, not converged in
size); this repeats it on the dataset's own sites at the build's settings (k-mesh, docs/reference.md).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from s2s.cli.data import load_dataset
from s2s.resources import resolve


def rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference along the last axis (eV^-1 for spectra on the grid)."""
    return np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))


def fidelity_gap(both, n_pairs: int = 4000, seed: int = 0) -> dict:
    """The numbers of the module docstring for a dataset holding both fidelities (``--fidelity both``)."""
    xtb = [r for r in both if r.fidelity == "xtb"]
    ref = {r.key: r for r in both if r.fidelity == "reference"}
    keys = sorted(k for k in ref if k in {r.key for r in xtb})
    by_key = {r.key: r for r in xtb}
    X = np.stack([by_key[k].spectrum for k in keys])
    G = np.stack([ref[k].spectrum for k in keys])
    lib = np.stack([r.spectrum for r in xtb])
    lib_sid = np.array([r.structure_id for r in xtb])
    pearson = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(X, G)])
    same_site = rms(X, G)
    nearest = np.empty(len(keys))
    for i, (sid, _) in enumerate(keys):
        d = rms(X[i][None], lib)
        d[lib_sid == sid] = np.inf
        nearest[i] = d.min()
    pairs = np.random.default_rng(seed).integers(0, len(lib), (n_pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    typical = float(np.median(rms(lib[pairs[:, 0]], lib[pairs[:, 1]])))

    def q(v: np.ndarray) -> list[float]:
        return [float(np.quantile(v, p)) for p in (0.1, 0.5, 0.9)]

    return {
        "n_sites": len(keys),
        "n_structures": len({k[0] for k in keys}),
        "pearson_q10_median_q90": q(pearson),
        "rms_same_site_q10_median_q90": q(same_site),
        "rms_nearest_other_xtb_q10_median_q90": q(nearest),
        "ratio_same_site_to_nearest_q10_median_q90": q(same_site / nearest),
        "rms_typical_xtb_pair_median": typical,
        "ratio_same_site_to_typical_median": float(np.median(same_site) / typical),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="dataset file (default: the shipped one)")
    ap.add_argument("--reference-store", default=None)
    a = ap.parse_args(argv)
    both = load_dataset(resolve("data", a.data), "both", a.reference_store)
    g = fidelity_gap(both)
    print(f"{g['n_sites']} sites of {g['n_structures']} structures with both spectra; 10 % / median / 90 %:")
    for k, v in g.items():
        if isinstance(v, list):
            print(f"  {k:45s} " + " / ".join(f"{x:.4g}" for x in v))
    print(f"  {'rms_typical_xtb_pair_median':45s} {g['rms_typical_xtb_pair_median']:.4g}")
    print(f"  {'ratio_same_site_to_typical_median':45s} {g['ratio_same_site_to_typical_median']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
