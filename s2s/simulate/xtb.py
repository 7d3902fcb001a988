"""Open O K-edge simulator: GFN1-xTB (``tblite``) O-p projected empty states.

Recipe (see docs/simulator.md for the measurements behind the defaults):

1. periodic supercell, Gamma point only.  ``supercell="min_image"`` (default):
   the integer supercell with the fewest cells whose *shortest* lattice vector
   (the distance between a site and its nearest periodic image) is >=
   ``XtbSettings.min_length`` Å (possibly non-diagonal; search from
   :func:`s2s.simulate.supercell.find_supercell`, the one the GPAW reference
   uses); ``supercell="diagonal"``: the smallest multiples ``(n1, n2, n3)`` of
   the input cell with every lattice vector >= ``min_length``;
2. one self-consistent GFN-xTB calculation:
   * ``variant="z+1"`` (default): the excited O replaced by F (equivalent-core
     approximation), total charge ``XtbSettings.charge`` (0 by default: the
     excited electron stays, in a half-filled level; +1 gives a closed shell),
     one SCF per site;
   * ``variant="ground"``: no core hole, total charge 0; one SCF per structure
     gives the O-p spectra of every O site (cost per structure, not per site);
3. for every level n, the O-p weight on the excited atom A,
   Mulliken ``w_n = sum_{mu in A, p} C_mu,n (S C)_mu,n`` or Löwdin
   ``w_n = sum_{mu in A, p} ((S^1/2 C)_mu,n)^2``, times the level's empty
   fraction ``1 - occ_n / 2``;
4. energies relative to the onset reference (``onset="lumo"``: the lowest
   empty level, i.e. the lowest level at most 3/4 occupied, is 0 eV;
   ``"homo"``: the highest level at least 3/4 occupied is 0 eV; ``"midgap"``;
   ``"edge"``: the point where the broadened spectrum first reaches 10 % of its
   maximum is 0 eV);
5. Voigt broadening (Gaussian and Lorentzian FWHM in eV, the Lorentzian may
   grow linearly with energy above the onset), sampled on the paper's 200-point
   grid (-1.0 .. 18.9 eV, 0.1 eV), unit area.

The expensive part (steps 1-3) only depends on :meth:`XtbSettings.calc_key`;
the stick spectrum (level energies and weights) is what gets cached, and the
broadening (steps 4-5) is applied on top, so broadening and onset can be tuned
without recomputing anything.

Everything here is a pure function of (structure, site, settings).  Only Si-O
structures are accepted.  :class:`XtbSettings`, :class:`SiteResult` and :func:`structure_hash`
live in :mod:`s2s.simulate.xtb_settings` and are re-exported here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
from pymatgen.core import Structure
from scipy.special import voigt_profile

from s2s.simulate.supercell import find_supercell
from s2s.simulate.xtb_settings import (  # noqa: F401 - re-exported: s2s.simulate.xtb is the public path
    ALLOWED_ELEMENTS,
    BOHR_ANGSTROM,
    EDGE_FRACTION,
    HARTREE_EV,
    KELVIN_HARTREE,
    ONSETS,
    PROJECTIONS,
    STICK_MIN_REL_WEIGHT,
    STICK_WINDOW_EV,
    SUPERCELLS,
    VARIANTS,
    SiteResult,
    XtbSettings,
    _from_json_float,
    _json_float,
    _matrix_tuple,
    _stable_hash,
    structure_hash,
)
from s2s.spectrum import GRID, normalize
from s2s.spectrum import onset_shift as _edge

# ---------------------------------------------------------------------------
# structure handling


def check_si_o(structure: Structure, what: str = "structure") -> None:
    """Raise ValueError unless ``structure`` is an ordered Si-O structure."""
    if not structure.is_ordered:
        raise ValueError(f"{what}: disordered structures are not supported")
    elements = {el.symbol for el in structure.composition.elements}
    if not elements <= ALLOWED_ELEMENTS or "O" not in elements:
        raise ValueError(f"{what}: only Si-O structures are supported, got elements {sorted(elements)}")


def supercell_multiples(
    lattice_abc: tuple[float, float, float] | np.ndarray, min_length: float
) -> tuple[int, int, int]:
    """Smallest integer multiples with every lattice vector >= ``min_length`` Å."""
    abc = np.asarray(lattice_abc, dtype=np.float64)
    n = np.maximum(1, np.ceil(min_length / abc - 1e-9)).astype(int)
    return int(n[0]), int(n[1]), int(n[2])


def supercell_matrix(structure: Structure, settings: XtbSettings) -> np.ndarray:
    """Integer (3, 3) matrix P (rows: new lattice vectors = P @ cell) for ``settings``."""
    lat = structure.lattice.matrix
    if settings.supercell == "diagonal":
        return np.diag(supercell_multiples(structure.lattice.abc, settings.min_length))

    return np.asarray(find_supercell(lat, settings.min_length), dtype=int)


def _lattice_points(P: np.ndarray) -> np.ndarray:
    """The |det P| integer translations t (in input-cell units) inside supercell P, t = 0 first."""
    P = np.asarray(P, dtype=int)
    n = int(round(abs(np.linalg.det(P))))
    if n < 1:
        raise ValueError(f"supercell matrix {P.tolist()} is singular")
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) @ P
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    frac = grid @ np.linalg.inv(P)  # fractional coordinates in the supercell
    inside = np.all((frac > -1e-8) & (frac < 1 - 1e-8), axis=1)
    pts = grid[inside]
    if len(pts) != n:
        raise RuntimeError(f"supercell {P.tolist()}: found {len(pts)} lattice points, expected {n}")
    order = np.lexsort((pts[:, 2], pts[:, 1], pts[:, 0], np.abs(pts).sum(axis=1)))
    return pts[order]


def make_supercell(
    structure: Structure, mult: tuple[int, int, int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atomic numbers (N,), Cartesian positions (N, 3) Å and lattice (3, 3) Å.

    ``mult`` is ``(n1, n2, n3)`` or an integer matrix P (rows: new vectors =
    P @ cell).  Atom ``i`` of the input cell (translation 0) keeps index ``i``
    in the supercell; its images follow in blocks of ``len(structure)``.
    """
    P = np.asarray(mult, dtype=int)
    if P.shape == (3,):
        P = np.diag(P)
    shifts = _lattice_points(P).astype(np.float64)
    frac = structure.frac_coords[None, :, :] + shifts[:, None, :]  # (T, n, 3), T starts at 0,0,0
    lat = structure.lattice.matrix
    cart = frac.reshape(-1, 3) @ lat
    numbers = np.tile(np.array([s.specie.Z for s in structure], dtype=np.int64), len(shifts))
    return numbers, cart, P.astype(np.float64) @ lat


# ---------------------------------------------------------------------------
# the xTB calculation


@dataclass
class _Scf:
    energies: np.ndarray  # (norb,) eV
    occupations: np.ndarray  # (norb,) electrons
    proj: np.ndarray  # (natoms_requested, norb) O-p weight per level
    seconds: float


def _run_scf(
    numbers: np.ndarray,
    positions: np.ndarray,
    lattice: np.ndarray,
    charge: int,
    settings: XtbSettings,
    project_atoms: list[int],
) -> _Scf:
    """One tblite SCF; returns levels and the O-p weights on ``project_atoms``.

    Raises RuntimeError (from tblite) when the SCF does not converge.
    """
    from tblite.interface import Calculator  # import here: heavy, and workers import lazily

    t0 = time.perf_counter()
    calc = Calculator(
        settings.method,
        numbers,
        positions / BOHR_ANGSTROM,
        charge=float(charge),
        lattice=lattice / BOHR_ANGSTROM,
        periodic=np.array([True, True, True]),
    )
    calc.set("verbosity", 0)
    calc.set("save-integrals", 1)
    calc.set("max-iter", int(settings.max_iter))
    calc.set("accuracy", float(settings.accuracy))
    calc.set("temperature", float(settings.temperature) * KELVIN_HARTREE)
    res = calc.singlepoint()
    energies = np.asarray(res.get("orbital-energies"), dtype=np.float64) * HARTREE_EV
    occ = np.asarray(res.get("orbital-occupations"), dtype=np.float64)
    coeff = np.asarray(res.get("orbital-coefficients"), dtype=np.float64)  # (ao, mo)
    overlap = np.asarray(res.get("overlap-matrix"), dtype=np.float64)
    if energies.ndim != 1 or occ.shape != energies.shape:
        raise RuntimeError(f"unexpected tblite output shapes {energies.shape}, {occ.shape} (spin-polarised?)")

    orb_shell = np.asarray(calc.get("orbital-map"), dtype=np.int64)
    shell_atom = np.asarray(calc.get("shell-map"), dtype=np.int64)
    shell_l = np.asarray(calc.get("angular-momenta"), dtype=np.int64)
    orb_atom = shell_atom[orb_shell]
    orb_l = shell_l[orb_shell]

    if settings.projection == "mulliken":
        sc = overlap @ coeff
        per_ao = coeff * sc  # (ao, mo), columns sum to 1
    else:
        w, v = np.linalg.eigh(overlap)
        s_half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        per_ao = (s_half @ coeff) ** 2
    proj = np.empty((len(project_atoms), len(energies)))
    for k, a in enumerate(project_atoms):
        mask = (orb_atom == a) & (orb_l == 1)
        if not mask.any():
            raise RuntimeError(f"atom {a} has no p orbitals in {settings.method}")
        proj[k] = per_ao[mask].sum(axis=0)
    return _Scf(energies, occ, proj, time.perf_counter() - t0)


def _band_edges(energies: np.ndarray, occ: np.ndarray) -> tuple[float, float]:
    """(homo, lumo) in eV: highest level >= 3/4 filled, lowest level <= 3/4 filled.

    With charge 0 and Z+1 the half-filled level counts as empty (the lowest
    empty level), so the gap is measured from the highest filled level to it.
    """
    filled = occ >= 1.5
    empty = occ <= 1.5
    if not filled.any() or not empty.any():
        raise RuntimeError("no occupied or no empty level")
    return float(energies[filled].max()), float(energies[empty].min())


def _site_sticks(scf: _Scf, row: int, homo: float, lumo: float) -> tuple[np.ndarray, np.ndarray]:
    """Stick spectrum of projected atom ``row``: energies rel. to lumo, weights."""
    empty_frac = np.clip(1.0 - scf.occupations / 2.0, 0.0, 1.0)
    w = np.clip(scf.proj[row], 0.0, None) * empty_frac
    e = scf.energies - lumo
    keep = (e >= STICK_WINDOW_EV[0]) & (e <= STICK_WINDOW_EV[1])
    e, w = e[keep], w[keep]
    if w.size and w.max() > 0:
        keep = w >= STICK_MIN_REL_WEIGHT * w.max()
        e, w = e[keep], w[keep]
    order = np.argsort(e)
    return e[order], w[order]


def _o_indices(structure: Structure) -> list[int]:
    return [i for i, s in enumerate(structure) if s.specie.symbol == "O"]


def simulate_site(
    structure: Structure,
    site_index: int,
    settings: XtbSettings,
    structure_id: str = "",
) -> SiteResult:
    """Z+1 O K-edge of O site ``site_index`` (one SCF).

    With ``settings.variant == "ground"`` this runs the ground-state SCF and
    returns the one site (use :func:`simulate_structure_ground_state` to get
    every site from that single SCF).  SCF failures and gap collapse give
    ``ok=False`` with the reason; bad input raises ValueError.
    """
    check_si_o(structure, f"structure {structure_id!r}")
    if not 0 <= site_index < len(structure) or structure[site_index].specie.symbol != "O":
        raise ValueError(
            f"structure {structure_id!r}: site {site_index} is not an O site (O sites: {_o_indices(structure)})"
        )
    if settings.variant == "ground":
        return simulate_structure_ground_state(structure, settings, structure_id, sites=[site_index])[site_index]

    mult = _matrix_tuple(supercell_matrix(structure, settings))
    numbers, pos, lat = make_supercell(structure, mult)
    numbers = numbers.copy()
    numbers[site_index] = 9  # O -> F (Z+1)
    base = dict(
        structure_id=structure_id,
        site_index=site_index,
        n_atoms=len(numbers),
        supercell=mult,
        calc_key=settings.calc_key(),
        meta={"structure_hash": structure_hash(structure)},
    )
    t0 = time.perf_counter()
    try:
        scf = _run_scf(numbers, pos, lat, settings.total_charge, settings, [site_index])
        homo, lumo = _band_edges(scf.energies, scf.occupations)
    except Exception as e:  # tblite raises its own RuntimeError subclass
        return SiteResult(
            ok=False, reason=f"scf failed: {type(e).__name__}: {e}", seconds=time.perf_counter() - t0, **base
        )
    return finalize(_make_result(scf, 0, homo, lumo, base), settings)


def simulate_structure_ground_state(
    structure: Structure,
    settings: XtbSettings,
    structure_id: str = "",
    sites: list[int] | None = None,
) -> dict[int, SiteResult]:
    """Ground-state (no core hole) O-p spectra of O ``sites`` (default: every O) from one SCF.

    ``settings.variant`` must be "ground".  The time of the single SCF is
    recorded in every returned site (``seconds``), with ``meta["shared_scf"]``.
    """
    check_si_o(structure, f"structure {structure_id!r}")
    if settings.variant != "ground":
        raise ValueError(
            f"simulate_structure_ground_state: settings.variant must be 'ground', got {settings.variant!r}"
        )
    o_sites = _o_indices(structure)
    sites = list(o_sites) if sites is None else [int(s) for s in sites]
    bad = [s for s in sites if s not in o_sites]
    if bad:
        raise ValueError(f"structure {structure_id!r}: sites {bad} are not O sites (O sites: {o_sites})")
    mult = _matrix_tuple(supercell_matrix(structure, settings))
    numbers, pos, lat = make_supercell(structure, mult)
    t0 = time.perf_counter()
    shash = structure_hash(structure)
    bases = {
        s: dict(
            structure_id=structure_id,
            site_index=s,
            n_atoms=len(numbers),
            supercell=mult,
            calc_key=settings.calc_key(),
            meta={"structure_hash": shash},
        )
        for s in sites
    }
    try:
        scf = _run_scf(numbers, pos, lat, settings.total_charge, settings, sites)
        homo, lumo = _band_edges(scf.energies, scf.occupations)
    except Exception as e:
        dt = time.perf_counter() - t0
        return {
            s: SiteResult(
                ok=False,
                reason=f"scf failed: {type(e).__name__}: {e}",
                seconds=dt,
                **{**bases[s], "meta": {"shared_scf": len(sites), "structure_hash": shash}},
            )
            for s in sites
        }
    out = {}
    for k, s in enumerate(sites):
        r = _make_result(scf, k, homo, lumo, bases[s])
        r.meta["shared_scf"] = len(sites)
        out[s] = finalize(r, settings)
    return out


def _make_result(scf: _Scf, row: int, homo: float, lumo: float, base: dict) -> SiteResult:
    e, w = _site_sticks(scf, row, homo, lumo)
    base = {**base, "meta": dict(base.get("meta", {}))}
    return SiteResult(
        ok=True, sticks_e=e, sticks_w=w, homo=homo - lumo, lumo=0.0, gap=lumo - homo, seconds=scf.seconds, **base
    )


# ---------------------------------------------------------------------------
# broadening


def onset_shift(result: SiteResult, onset: str, settings: XtbSettings | None = None) -> float:
    """Energy (eV, in the result's LUMO=0 frame) that becomes 0 for ``onset``.

    ``"edge"`` needs the broadening of ``settings``.
    """
    if onset == "edge":
        if settings is None:
            raise ValueError("onset_shift: onset='edge' needs the broadening settings")

        x = np.arange(-3.0, 20.0, 0.02)
        near = result.sticks_e < 25.0  # sticks far above the window only add a smooth tail
        y = broaden(
            result.sticks_e[near],
            result.sticks_w[near],
            x,
            settings.gauss_fwhm,
            settings.lorentz_fwhm,
            settings.lorentz_slope,
        )
        return _edge(x, y, fraction=EDGE_FRACTION, smooth_eV=0.0)
    if onset == "lumo":
        return 0.0
    if onset == "homo":
        return float(result.homo)
    if onset == "midgap":
        return 0.5 * float(result.homo)
    raise ValueError(f"onset: expected one of {ONSETS}, got {onset!r}")


def broaden(
    sticks_e: np.ndarray,
    sticks_w: np.ndarray,
    energies: np.ndarray,
    gauss_fwhm: float,
    lorentz_fwhm: float,
    lorentz_slope: float = 0.0,
) -> np.ndarray:
    """Voigt-broadened stick spectrum sampled at ``energies`` (all eV).

    The Lorentzian FWHM of a stick at energy e is ``lorentz_fwhm +
    lorentz_slope * max(e, 0)``.
    """
    e = np.asarray(sticks_e, dtype=np.float64)
    w = np.asarray(sticks_w, dtype=np.float64)
    x = np.asarray(energies, dtype=np.float64)
    sigma = gauss_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gamma = 0.5 * (lorentz_fwhm + lorentz_slope * np.clip(e, 0.0, None))  # HWHM per stick
    return (voigt_profile(x[:, None] - e[None, :], sigma, gamma[None, :]) * w[None, :]).sum(axis=1)


def grid_spectrum(result: SiteResult, settings: XtbSettings) -> np.ndarray:
    """Broadened spectrum of ``result`` on :data:`s2s.spectrum.GRID` (eV), unit area.

    The Voigt profiles are evaluated at the grid points directly (no spline
    step needed), then :func:`s2s.spectrum.normalize` gives unit area.
    """
    shift = onset_shift(result, settings.onset, settings)
    y = broaden(
        result.sticks_e - shift,
        result.sticks_w,
        GRID,
        settings.gauss_fwhm,
        settings.lorentz_fwhm,
        settings.lorentz_slope,
    )
    y = np.clip(y, 0.0, None)
    return normalize(y, source=f"xtb {result.structure_id} site {result.site_index}")


def finalize(result: SiteResult, settings: XtbSettings) -> SiteResult:
    """Apply the gap check and the broadening of ``settings`` (returns a copy)."""
    r = replace(result, meta=dict(result.meta))
    if not r.ok:
        r.spectrum = None
        return r
    if not r.gap >= settings.min_gap:
        r.ok = False
        r.reason = f"gap collapse: gap {r.gap:.3f} eV < min_gap {settings.min_gap} eV"
        r.spectrum = None
        return r
    if r.sticks_w.size == 0 or r.sticks_w.sum() <= 0:
        r.ok = False
        r.reason = "no empty O-p weight in the stick window"
        r.spectrum = None
        return r
    try:
        r.spectrum = grid_spectrum(r, settings)
    except ValueError as e:
        r.ok = False
        r.reason = f"spectrum: {e}"
        r.spectrum = None
    return r
