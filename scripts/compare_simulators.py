"""Compare xTB O K-edge variants with the GPAW half-core-hole reference (or, without one, with each other).

Usage (from the repository root, niced, single-threaded)::

    OMP_NUM_THREADS=1 nice -n 15 python scripts/compare_simulators.py \
        --reference data/reference/gpaw --cache data/cache/xtb --figures docs/figures

    # before the references exist: different environments must give different spectra
    OMP_NUM_THREADS=1 nice -n 15 python scripts/compare_simulators.py --dev --cache data/cache/xtb

For every variant (ground state; Z+1 at charge +1; Z+1 at charge 0) the stick
spectra of the reference sites are computed once (cached through
:func:`s2s.simulate.build.build`), then re-broadened for a sweep of Gaussian /
Lorentzian widths and onset definitions, and compared with the reference on the
200-point grid (Pearson r and cosine similarity per site; mean over sites).
The cost per site is the SCF wall time (ground state: per structure divided by
its number of unique O sites).  Prints a table, writes
``<figures>/simulator_comparison.json`` and the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.simulate import build as B
from s2s.simulate.xtb import XtbSettings, broaden, finalize
from s2s.spectrum import GRID, normalize

VARIANTS: dict[str, dict] = {
    "ground": dict(variant="ground"),
    "z+1 q=+1": dict(variant="z+1", charge=1),
    "z+1 q=0": dict(variant="z+1", charge=0),
    "z+1 q=0 L": dict(variant="z+1", charge=0, projection="lowdin"),
}
GAUSS = (0.5, 1.0, 1.5, 2.0)
LORENTZ = (0.1, 0.5, 1.0)
SLOPES = (0.0, 0.1, 0.2)
ONSETS = ("lumo", "homo", "midgap", "edge")


# ---------------------------------------------------------------------------- structures


def _aflow(mineral: str) -> Structure:
    import gzip
    from importlib.resources import files

    path = files("pymatgen.analysis.prototypes") / "aflow_prototypes.json.gz"
    with gzip.open(str(path)) as fh:
        lib = json.load(fh)
    for it in lib:
        if it["tags"]["mineral"] == mineral:
            snl = it["snl"]
            return Structure.from_dict(snl["structure"] if "structure" in snl else snl)
    raise KeyError(mineral)


def stishovite() -> Structure:
    """Rutile-type SiO2, P4_2/mnm, a = 4.177, c = 2.666 Å, O at 4f x = 0.3062 (Si 6-fold, O 3-fold)."""
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.177, 2.666), ["Si", "O"],
                                     [[0, 0, 0], [0.3062, 0.3062, 0]])


DEV_SUBOXIDES = Path("data/reference/structures")  # CHGNet-relaxed Si2O / SiO of the reference helper


def dev_structures(extra_dir: Path | None = None) -> list[tuple[str, Structure]]:
    """Clearly different environments: quartz, cristobalite, stishovite (O 3-fold), keatite,
    the Si-rich Si2O and SiO suboxides (Si-Si bonds) when their CIFs are there (+ files in extra_dir)."""
    items = [
        ("dev-quartz-alpha", _aflow("quartz (alpha)")),
        ("dev-cristobalite-alpha", _aflow("low (alpha) Cristobalite")),
        ("dev-stishovite", stishovite()),
        ("dev-keatite", _aflow("Keatite")),
    ]
    for name in ("suboxide_si2o", "suboxide_sio"):
        p = DEV_SUBOXIDES / f"{name}.cif"
        if p.is_file():
            items.append((f"dev-{name}", Structure.from_file(p)))
    if extra_dir is not None and extra_dir.is_dir():
        items += B.read_structures(extra_dir)
    return items


# ---------------------------------------------------------------------------- references


def load_references(ref_dir: Path, structures_dir: Path | None) -> list[dict]:
    """Reference sites: dicts with structure_id, site_index, structure, grid (200,), and raw fields."""
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
            from s2s.spectrum import spectrum_on_grid

            grid = spectrum_on_grid(d["energies_eV"], d["intensity"], source=str(p))
        refs.append(dict(structure_id=sid, site_index=site, structure=st, grid=np.asarray(grid, float),
                         raw=d, path=str(p)))
    return refs


# ---------------------------------------------------------------------------- metrics


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compute_variant(items, sites_by_id, settings, cache, workers):
    """Stick spectra of the requested sites (cached); returns {(sid, site): SiteResult (unbroadened)}."""
    def sites_fn(structure, sid):
        return sites_by_id[sid]

    rep = B.build(items, settings, cache, workers=workers, sites_fn=sites_fn, progress=True)
    print(f"  {settings.variant} q={settings.total_charge}: {rep.summary()}", file=sys.stderr)
    out = {}
    for sid, _ in items:
        for s in sites_by_id[sid]:
            d = B.read_site_record(B.site_path(cache, settings, sid, s))
            from s2s.simulate.xtb import SiteResult

            out[(sid, s)] = SiteResult.from_json_dict(d)
    return out


def site_cost(r) -> float:
    """SCF seconds per site (ground state: the shared SCF divided by the sites it served)."""
    n = int(r.meta.get("shared_scf", 1)) if r.meta else 1
    return r.seconds / max(n, 1)


# ---------------------------------------------------------------------------- modes


def run_reference(args) -> None:
    refs = load_references(args.reference, args.structures)
    if not refs:
        raise SystemExit(f"no reference sites with structures under {args.reference}")
    items_d: dict[str, Structure] = {}
    sites_by_id: dict[str, list[int]] = {}
    for r in refs:
        items_d.setdefault(r["structure_id"], r["structure"])
        sites_by_id.setdefault(r["structure_id"], []).append(r["site_index"])
    items = list(items_d.items())
    print(f"{len(refs)} reference sites in {len(items)} structures", file=sys.stderr)

    base = XtbSettings(min_length=args.min_length)
    rows = []
    per_site = {}
    ref_cache: dict[tuple, np.ndarray] = {}

    def ref_grid(r: dict, g: float, lo: float, sl: float) -> np.ndarray:
        """GPAW sticks broadened like the candidate (same Voigt), on the grid, unit area."""
        key = (r["path"], g, lo, sl)
        if key not in ref_cache:
            if args.ref_as_shipped:
                ref_cache[key] = r["grid"]
            else:
                e = np.asarray(r["raw"]["energies_eV"], float)
                w = np.asarray(r["raw"]["intensity"], float)
                ref_cache[key] = normalize(np.clip(broaden(e, w, GRID, g, lo, sl), 0, None))
        return ref_cache[key]

    for vname, kw in VARIANTS.items():
        st = base.with_(**kw)
        raw = compute_variant(items, sites_by_id, st, args.cache, args.workers)
        cost = np.array([site_cost(raw[(r["structure_id"], r["site_index"])]) for r in refs])
        natoms = np.array([raw[(r["structure_id"], r["site_index"])].n_atoms for r in refs])
        for g, lo, sl, on in itertools.product(GAUSS, LORENTZ, SLOPES, ONSETS):
            sb = st.with_(gauss_fwhm=g, lorentz_fwhm=lo, lorentz_slope=sl, onset=on)
            pr, co, bad = [], [], 0
            for r in refs:
                res = finalize(raw[(r["structure_id"], r["site_index"])], sb)
                if not res.ok:
                    bad += 1
                    pr.append(np.nan)
                    co.append(np.nan)
                    continue
                ref = ref_grid(r, g, lo, sl)
                pr.append(pearson(res.spectrum, ref))
                co.append(cosine(res.spectrum, ref))
            pr, co = np.array(pr), np.array(co)
            row = dict(variant=vname, gauss_fwhm=g, lorentz_fwhm=lo, lorentz_slope=sl, onset=on,
                       pearson_mean=float(np.nanmean(pr)), pearson_median=float(np.nanmedian(pr)),
                       pearson_min=float(np.nanmin(pr)), cosine_mean=float(np.nanmean(co)),
                       n_failed=int(bad), seconds_per_site=float(cost.mean()), atoms_mean=float(natoms.mean()))
            rows.append(row)
            per_site[(vname, g, lo, sl, on)] = pr
    rows.sort(key=lambda r: -r["pearson_mean"])
    _print_table(rows)
    best = {}
    for vname in VARIANTS:
        best[vname] = max((r for r in rows if r["variant"] == vname), key=lambda r: r["pearson_mean"])
    _print_pivot(rows)
    print("\nbest per variant:")
    _print_table(list(best.values()))
    args.figures.mkdir(parents=True, exist_ok=True)
    out = dict(n_reference_sites=len(refs), reference=[(r["structure_id"], r["site_index"]) for r in refs],
               rows=rows, best=best, min_length=args.min_length,
               per_site_best={v: dict(zip([f"{r['structure_id']}:{r['site_index']}" for r in refs],
                                          map(float, per_site[(v, b["gauss_fwhm"], b["lorentz_fwhm"],
                                                               b["lorentz_slope"], b["onset"])])))
                              for v, b in best.items()})
    B.atomic_write_json(args.figures / "simulator_comparison.json", out)
    _figures_reference(refs, best, base, args, ref_grid)


def _print_table(rows) -> None:
    print(f"{'variant':10s} {'gauss':>5s} {'lor':>4s} {'slope':>5s} {'onset':>6s} {'r_mean':>7s} {'r_med':>6s} "
          f"{'r_min':>6s} {'cos':>6s} {'fail':>4s} {'s/site':>7s}")
    for r in rows[:40]:
        print(f"{r['variant']:10s} {r['gauss_fwhm']:5.2f} {r['lorentz_fwhm']:4.1f} {r['lorentz_slope']:5.2f} "
              f"{r['onset']:>6s} {r['pearson_mean']:7.3f} {r['pearson_median']:6.3f} {r['pearson_min']:6.3f} "
              f"{r['cosine_mean']:6.3f} {r['n_failed']:4d} {r['seconds_per_site']:7.2f}")


def _print_pivot(rows) -> None:
    """Mean Pearson r for each (variant, onset) and Gaussian width (best Lorentzian/slope at that width)."""
    print(f"\nmean Pearson r vs GPAW (best Lorentzian/slope per cell), by Gaussian FWHM (eV):")
    print(f"{'variant':10s} {'onset':>6s} " + " ".join(f"{g:>6.2f}" for g in GAUSS))
    for vname in VARIANTS:
        for on in ONSETS:
            cells = []
            for g in GAUSS:
                sel = [r["pearson_mean"] for r in rows if r["variant"] == vname and r["onset"] == on
                       and r["gauss_fwhm"] == g]
                cells.append(f"{max(sel):6.3f}" if sel else "   -  ")
            print(f"{vname:10s} {on:>6s} " + " ".join(cells))


def _figures_reference(refs, best, base, args, ref_grid) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(refs), 12)
    fig, axes = plt.subplots((n + 3) // 4, 4, figsize=(14, 3 * ((n + 3) // 4)), squeeze=False)
    top = max(best.values(), key=lambda b: b["pearson_mean"])
    for ax, r in zip(axes.flat, refs[:n]):
        ax.plot(GRID, ref_grid(r, top["gauss_fwhm"], top["lorentz_fwhm"], top["lorentz_slope"]), "k", lw=2,
                label="GPAW")
        for vname, b in best.items():
            st = base.with_(**VARIANTS[vname]).with_(gauss_fwhm=b["gauss_fwhm"], lorentz_fwhm=b["lorentz_fwhm"],
                                                      lorentz_slope=b["lorentz_slope"], onset=b["onset"])
            res = B.load_site(args.cache, st, r["structure_id"], r["site_index"])
            if res is not None and res.ok:
                ref = ref_grid(r, b["gauss_fwhm"], b["lorentz_fwhm"], b["lorentz_slope"])
                ax.plot(GRID, res.spectrum, lw=1, label=f"{vname} r={pearson(res.spectrum, ref):.2f}")
        ax.set_title(f"{r['structure_id']} O{r['site_index']}", fontsize=8)
        ax.legend(fontsize=6)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.supxlabel("energy (eV)")
    fig.tight_layout()
    fig.savefig(args.figures / "simulator_vs_gpaw.png", dpi=110)
    print(f"wrote {args.figures / 'simulator_vs_gpaw.png'}", file=sys.stderr)


def run_dev(args) -> None:
    """No references: do clearly different environments give clearly different spectra?"""
    items = dev_structures(args.structures)
    from s2s.environment import unique_o_sites

    sites_by_id = {sid: unique_o_sites(s, structure_id=sid) for sid, s in items}
    base = XtbSettings(min_length=args.min_length)
    spectra: dict[str, dict] = {}
    timing = {}
    for vname in args.variants:
        st = base.with_(**VARIANTS[vname])
        t0 = time.perf_counter()
        raw = compute_variant(items, sites_by_id, st, args.cache, args.workers)
        spectra[vname] = {k: finalize(v, st) for k, v in raw.items()}
        timing[vname] = {k: (site_cost(v), v.n_atoms, v.gap) for k, v in raw.items()}
        print(f"{vname}: {time.perf_counter() - t0:.1f} s wall (cached items cost nothing)", file=sys.stderr)
    keys = [(sid, s) for sid, _ in items for s in sites_by_id[sid]]
    print(f"{'site':34s} " + " ".join(f"{v:>22s}" for v in args.variants))
    for k in keys:
        cells = []
        for v in args.variants:
            c, n, g = timing[v][k]
            ok = spectra[v][k].ok
            cells.append(f"{c:6.1f}s {n:4d}at gap{g:5.2f}{'' if ok else ' X'}")
        print(f"{k[0] + ':' + str(k[1]):34s} " + " ".join(f"{c:>22s}" for c in cells))
    for v in args.variants:
        ok = [k for k in keys if spectra[v][k].ok]
        Y = np.array([spectra[v][k].spectrum for k in ok])
        R = np.corrcoef(Y)
        sid = np.array([k[0] for k in ok])
        same = sid[:, None] == sid[None, :]
        off = ~np.eye(len(ok), dtype=bool)
        print(f"\n{v}: Pearson between sites of the same structure: mean {R[same & off].mean() if (same & off).any() else float('nan'):.3f}; "
              f"between different structures: mean {R[~same].mean():.3f}, max {R[~same].max():.3f}")
        labels = [f"{a.replace('dev-', '')[:14]}:{b}" for a, b in ok]
        print(" " * 20 + " ".join(f"{l[:7]:>7s}" for l in labels))
        for i, l in enumerate(labels):
            print(f"{l:20s}" + " ".join(f"{x:7.2f}" for x in R[i]))
    if args.figures:
        _figures_dev(spectra, keys, args)


def _figures_dev(spectra, keys, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.figures.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(spectra), figsize=(5 * len(spectra), 4), squeeze=False)
    for ax, (v, sp) in zip(axes[0], spectra.items()):
        for k in keys:
            if sp[k].ok:
                ax.plot(GRID, sp[k].spectrum, lw=1, label=f"{k[0].replace('dev-', '')} O{k[1]}")
        ax.set_title(v)
        ax.set_xlabel("energy (eV, 0 = lowest empty level)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.figures / "simulator_dev_environments.png", dpi=110)
    print(f"wrote {args.figures / 'simulator_dev_environments.png'}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=Path("data/reference/gpaw"))
    ap.add_argument("--structures", type=Path, default=None, help="structure folder (records) for ids of references")
    ap.add_argument("--cache", type=Path, default=Path("data/cache/xtb"))
    ap.add_argument("--figures", type=Path, default=Path("docs/figures"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--min-length", type=float, default=XtbSettings.min_length)
    ap.add_argument("--ref-as-shipped", action="store_true",
                    help="compare with the references' own grid_spectrum instead of re-broadening their sticks")
    ap.add_argument("--dev", action="store_true", help="no references: compare environments with each other")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    if args.dev:
        run_dev(args)
    else:
        run_reference(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
