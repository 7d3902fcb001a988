"""Sweep of xTB O K-edge variants and broadenings against the GPAW half-core-hole reference.

For every variant (:data:`VARIANTS`: ground state; Z+1 at charge +1; Z+1 at charge 0, Mulliken or
Löwdin) the stick spectra of the reference sites are computed once (cached through
:func:`s2s.simulate.build.build`), then re-broadened for a sweep of Gaussian / Lorentzian widths
(eV) and onset definitions and compared with the reference on the 200-point grid (Pearson r and
cosine per site; mean over sites).  The cost per site is the SCF wall time (ground state: per
structure divided by its number of unique O sites).  Without references (``dev`` mode) it asks
whether clearly different environments give clearly different spectra.

:func:`s2s.simulate.comparison_report.compare_with_reference` runs the sweep and writes
``<figures>/simulator_comparison.json`` and (optionally) the tables of a markdown document;
``scripts/compare_simulators.py`` is its command line.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from s2s.resources import default_path
from s2s.simulate import build as B
from s2s.simulate.compare import cosine, pearson
from s2s.simulate.xtb import SiteResult, XtbSettings, broaden, finalize
from s2s.spectrum import GRID, normalize, spectrum_on_grid
from s2s.structures.literature import stishovite
from s2s.structures.prototypes import aflow_structure

#: name -> XtbSettings overrides of each simulator variant.
VARIANTS: dict[str, dict] = {
    "ground": dict(variant="ground"),
    "z+1 q=+1": dict(variant="z+1", charge=1),
    "z+1 q=0": dict(variant="z+1", charge=0),
    "z+1 q=0 L": dict(variant="z+1", charge=0, projection="lowdin"),
}
GAUSS = (0.5, 1.0, 1.5, 2.0)  # Gaussian FWHM, eV
LORENTZ = (0.1, 0.5, 1.0)  # Lorentzian FWHM at the onset, eV
SLOPES = (0.0, 0.1, 0.2)  # Lorentzian FWHM slope, eV per eV above the onset
ONSETS = ("lumo", "homo", "midgap", "edge")

#: (variant, gauss, lorentz, slope, onset) -> (Pearson r per site, cosine per site), each (n_sites,)
PerSite = dict[tuple, tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------- structures


def dev_structures(
    extra_dir: Path | None = None, reference_structures: Path | None = None
) -> list[tuple[str, Structure]]:
    """Clearly different environments: quartz, cristobalite, stishovite (O 3-fold), keatite,
    the Si-rich Si2O and SiO suboxides (Si-Si bonds) when their CIFs are in ``reference_structures``
    (default: the reference set's ``structures/`` folder, :mod:`s2s.resources`) (+ files in extra_dir)."""
    if reference_structures is None:
        ref = default_path("reference")
        reference_structures = None if ref is None else ref / "structures"
    items = [
        ("dev-quartz-alpha", aflow_structure("A2B_hP9_152_c_a")),
        ("dev-cristobalite-alpha", aflow_structure("A2B_tP12_92_b_a")),
        ("dev-stishovite", stishovite()),
        ("dev-keatite", aflow_structure("A2B_tP36_96_3b_ab")),
    ]
    for name in ("suboxide_si2o", "suboxide_sio"):
        p = None if reference_structures is None else reference_structures / f"{name}.cif"
        if p is not None and p.is_file():
            items.append((f"dev-{name}", Structure.from_file(p)))
    if extra_dir is not None and extra_dir.is_dir():
        items += B.read_structures(extra_dir)
    return items


# ---------------------------------------------------------------------------- references


def load_references(ref_dir: Path, structures_dir: Path | None) -> list[dict]:
    """Reference sites: dicts with structure_id, site_index, structure, grid (200,), raw (the record), path.

    The structure comes from the record, else from ``structure_file`` / a CIF or JSON beside it,
    else from ``structures_dir/<id>.json``; a site without one is skipped with a warning.
    """
    refs = []
    for p in sorted(ref_dir.glob("*.json")):
        d = json.loads(p.read_text())
        if not isinstance(d, dict) or "site_index" not in d or "structure_id" not in d:
            continue
        sid, site = str(d["structure_id"]), int(d["site_index"])
        st = None
        if isinstance(d.get("structure"), dict):
            st = Structure.from_dict(d["structure"])
        else:
            cands = [p.with_suffix(".cif"), ref_dir / f"{sid}.cif", ref_dir / f"{sid}.json"]
            if d.get("structure_file"):
                cands.insert(0, ref_dir.parent / str(d["structure_file"]))
            for cand in cands:
                if cand.is_file() and cand != p:
                    if cand.suffix == ".cif":
                        st = Structure.from_file(cand)
                    else:
                        dd = json.loads(cand.read_text())
                        st = Structure.from_dict(dd.get("structure", dd))
                    break
            if st is None and structures_dir is not None:
                cand = structures_dir / f"{sid}.json"
                if cand.is_file():
                    dd = json.loads(cand.read_text())
                    st = Structure.from_dict(dd.get("structure", dd))
        if st is None:
            print(f"warning: {p}: no structure found for {sid}; skipped", file=sys.stderr)
            continue
        grid = d.get("grid_spectrum")
        if grid is None:
            grid = spectrum_on_grid(d["energies_eV"], d["intensity"], source=str(p))
        refs.append(
            dict(structure_id=sid, site_index=site, structure=st, grid=np.asarray(grid, float), raw=d, path=str(p))
        )
    return refs


def reference_broadener(as_shipped: bool = False) -> Callable[[dict, float, float, float], np.ndarray]:
    """``ref_grid(ref, gauss, lorentz, slope)``: the GPAW sticks broadened like the candidate (same
    Voigt, widths in eV), on the grid, unit area (memoised); ``as_shipped``: the record's own grid."""
    cache: dict[tuple, np.ndarray] = {}

    def ref_grid(r: dict, g: float, lo: float, sl: float) -> np.ndarray:
        key = (r["path"], g, lo, sl)
        if key not in cache:
            if as_shipped:
                cache[key] = r["grid"]
            else:
                e = np.asarray(r["raw"]["energies_eV"], float)
                w = np.asarray(r["raw"]["intensity"], float)
                cache[key] = normalize(np.clip(broaden(e, w, GRID, g, lo, sl), 0, None))
        return cache[key]

    return ref_grid


# ---------------------------------------------------------------------------- simulation


def compute_variant(
    items: list[tuple[str, Structure]],
    sites_by_id: dict[str, list[int]],
    settings: XtbSettings,
    cache: Path,
    workers: int,
) -> dict[tuple[str, int], SiteResult]:
    """Stick spectra of the requested sites (cached); returns {(sid, site): SiteResult (unbroadened)}."""

    def sites_fn(structure, sid):
        return sites_by_id[sid]

    rep = B.build(items, settings, cache, workers=workers, sites_fn=sites_fn, progress=True)
    print(f"  {settings.variant} q={settings.total_charge}: {rep.summary()}", file=sys.stderr)
    out = {}
    for sid, _ in items:
        for s in sites_by_id[sid]:
            d = B.read_site_record(B.site_path(cache, settings, sid, s))
            out[(sid, s)] = SiteResult.from_json_dict(d)
    return out


def site_cost(r: SiteResult) -> float:
    """SCF seconds per site (ground state: the shared SCF divided by the sites it served)."""
    n = int(r.meta.get("shared_scf", 1)) if r.meta else 1
    return r.seconds / max(n, 1)


# ---------------------------------------------------------------------------- the sweep


def sweep(
    refs: list[dict],
    base: XtbSettings,
    cache: Path,
    workers: int,
    ref_grid: Callable[[dict, float, float, float], np.ndarray],
) -> tuple[list[dict], PerSite]:
    """Every variant x Gaussian x Lorentzian x slope x onset against the references.

    Returns (rows sorted by mean Pearson r, descending; per-site Pearson r / cosine of every setting).
    """
    items_d: dict[str, Structure] = {}
    sites_by_id: dict[str, list[int]] = {}
    for r in refs:
        items_d.setdefault(r["structure_id"], r["structure"])
        sites_by_id.setdefault(r["structure_id"], []).append(r["site_index"])
    items = list(items_d.items())
    print(f"{len(refs)} reference sites in {len(items)} structures", file=sys.stderr)
    rows = []
    per_site: PerSite = {}
    for vname, kw in VARIANTS.items():
        st = base.with_(**kw)
        raw = compute_variant(items, sites_by_id, st, cache, workers)
        cost = np.array([site_cost(raw[(r["structure_id"], r["site_index"])]) for r in refs])
        natoms = np.array([raw[(r["structure_id"], r["site_index"])].n_atoms for r in refs])
        for g, lo, sl, on in itertools.product(GAUSS, LORENTZ, SLOPES, ONSETS):
            sb = st.with_(gauss_fwhm=g, lorentz_fwhm=lo, lorentz_slope=sl, onset=on)
            pr, co, ps, bad = [], [], [], 0
            for r in refs:
                res = finalize(raw[(r["structure_id"], r["site_index"])], sb)
                if not res.ok:
                    bad += 1
                    pr.append(np.nan)
                    co.append(np.nan)
                    ps.append(np.nan)
                    continue
                ref = ref_grid(r, g, lo, sl)
                pr.append(pearson(res.spectrum, ref))
                co.append(cosine(res.spectrum, ref))
                ps.append(pearson(res.spectrum, r["grid"]))  # vs the shipped 0.5 eV reference
            pr, co, ps = np.array(pr), np.array(co), np.array(ps)
            row = dict(
                variant=vname,
                gauss_fwhm=g,
                lorentz_fwhm=lo,
                lorentz_slope=sl,
                onset=on,
                pearson_mean=float(np.nanmean(pr)),
                pearson_median=float(np.nanmedian(pr)),
                pearson_min=float(np.nanmin(pr)),
                cosine_mean=float(np.nanmean(co)),
                pearson_shipped_mean=float(np.nanmean(ps)),
                n_failed=int(bad),
                seconds_per_site=float(cost.mean()),
                atoms_mean=float(natoms.mean()),
            )
            rows.append(row)
            per_site[(vname, g, lo, sl, on)] = (pr, co)
    rows.sort(key=lambda r: -r["pearson_mean"])
    return rows, per_site


def similarity_check(refs: list[dict], settings: XtbSettings, cache: Path) -> dict:
    """Does xTB keep the relations between environments that GPAW shows?

    Both sets broadened with ``settings``; compares the pairwise Pearson matrices of the
    sites and asks, for each xTB spectrum, which GPAW spectrum is closest (retrieval).
    """
    X, G, sid = [], [], []
    for r in refs:
        res = B.load_site(cache, settings, r["structure_id"], r["site_index"])
        if res is None or not res.ok:
            continue
        e = np.asarray(r["raw"]["energies_eV"], float)
        w = np.asarray(r["raw"]["intensity"], float)
        G.append(
            normalize(
                np.clip(
                    broaden(e, w, GRID, settings.gauss_fwhm, settings.lorentz_fwhm, settings.lorentz_slope), 0, None
                )
            )
        )
        X.append(res.spectrum)
        sid.append(r["structure_id"])
    X, G, sid = np.array(X), np.array(G), np.array(sid)
    n = len(X)
    rx, rg = np.corrcoef(X), np.corrcoef(G)
    iu = np.triu_indices(n, 1)
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    cross = np.corrcoef(np.vstack([X, G]))[:n, n:]
    best = np.argmax(cross, axis=1)
    return dict(
        n_sites=n,
        pairwise_mean_xtb=float(rx[iu].mean()),
        pairwise_mean_gpaw=float(rg[iu].mean()),
        similarity_pearson=float(np.corrcoef(rx[iu], rg[iu])[0, 1]),
        similarity_spearman=float(np.corrcoef(rank(rx[iu]), rank(rg[iu]))[0, 1]),
        retrieval_site_top1=float(np.mean(best == np.arange(n))),
        retrieval_structure_top1=float(np.mean(sid[best] == sid)),
        n_structures=int(len(set(sid))),
    )
