"""Radial distribution around the excited O of an environment (paper, Fig. 7b).

For an :class:`~s2s.environment.Environment` the radial distribution is the
Gaussian-smoothed histogram of the distances r_j (Å) of the atoms j = 1..N-1 from
the excited atom (index 0)::

    n(r) = sum_j  exp(-(r - r_j)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)      [atoms / Å]

so that ``integral n(r) dr`` over r >= 0 is the number of neighbours counted (the
excited atom itself is left out).  This is the number of atoms per unit radius, the
quantity whose peaks the paper compares (Si at ~1.6 Å, O at ~2.6 Å, Si at ~3.1 Å in
SiO2); it is not divided by 4 pi r^2 rho because a finite cluster has no bulk density.
The smoothing is exact (a sum of Gaussians, i.e. a histogram with vanishing bins
convolved with a Gaussian of width ``sigma``), so the result does not depend on a bin
width.  All distances in Å.

* :func:`radial_distribution` - n(r) of one environment, all atoms or one species.
* :func:`radial_distribution_by_species` - {"all", "Si", "O"} -> n(r).
* :func:`ensemble_rdf` - mean, standard deviation and quantile band over several
  (generated) environments.
* :func:`rdf_peaks` - positions of the peaks of a curve (Å).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import find_peaks

from s2s.environment import SPECIES, Environment

#: Default radial grid (Å): 0 .. 7 Å in 0.01 Å steps (the 3rd shell ends within ~6 Å).
R_MAX: float = 7.0
R_STEP: float = 0.01
R_GRID: np.ndarray = np.round(np.arange(0.0, R_MAX + 0.5 * R_STEP, R_STEP), 10)
R_GRID.setflags(write=False)
#: Default Gaussian width (Å): resolves the Si (1.6 Å) and O (2.6 Å) shells of SiO2 and keeps
#: ensemble curves readable; use ~0.05 Å (the thermal Si-O spread) for sharper peaks.
SIGMA: float = 0.1

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _species_index(species: str | int | None) -> int | None:
    if species is None or species == "all":
        return None
    if isinstance(species, str):
        if species not in SPECIES:
            raise ValueError(f"rdf: species must be one of {SPECIES}, 'all' or None; got {species!r}")
        return SPECIES.index(species)
    s = int(species)
    if not 0 <= s < len(SPECIES):
        raise ValueError(f"rdf: species index must be in 0..{len(SPECIES) - 1}; got {species}")
    return s


def _grid(r: ArrayLike | None) -> np.ndarray:
    r = R_GRID if r is None else np.asarray(r, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or not np.all(np.isfinite(r)) or np.any(np.diff(r) <= 0):
        raise ValueError(f"rdf: r must be a strictly increasing 1-D grid in Å with >= 2 points; got shape {r.shape}")
    return r


def neighbour_distances(env: Environment, species: str | int | None = None) -> np.ndarray:
    """Distances (Å) of atoms 1..N-1 from atom 0 (the excited O), optionally of one species only."""
    d = np.linalg.norm(env.coords[1:] - env.coords[0], axis=1)
    s = _species_index(species)
    return d if s is None else d[env.species[1:] == s]


def radial_distribution(
    env: Environment, r: ArrayLike | None = None, sigma: float = SIGMA, species: str | int | None = None
) -> np.ndarray:
    """Smoothed radial distribution n(r) (atoms/Å) around the excited atom on grid ``r`` (Å).

    ``species``: None or "all" for every neighbour, "Si"/"O" (or 0/1) for one species.
    ``sigma`` (Å) is the Gaussian width.  ``integral n dr`` equals the number of
    neighbours counted whose Gaussian lies inside the grid (see module docstring).
    """
    r = _grid(r)
    if not sigma > 0:
        raise ValueError(f"rdf: sigma must be > 0 Å; got {sigma}")
    d = neighbour_distances(env, species)
    if d.size == 0:
        return np.zeros_like(r)
    z = (r[:, None] - d[None, :]) / sigma
    return np.exp(-0.5 * z * z).sum(axis=1) / (np.sqrt(2.0 * np.pi) * sigma)


def radial_distribution_by_species(
    env: Environment, r: ArrayLike | None = None, sigma: float = SIGMA
) -> dict[str, np.ndarray]:
    """{"all": n(r), "Si": n_Si(r), "O": n_O(r)} in atoms/Å on grid ``r`` (Å)."""
    out = {"all": radial_distribution(env, r, sigma)}
    for name in SPECIES:
        out[name] = radial_distribution(env, r, sigma, name)
    return out


@dataclass(frozen=True)
class RDFEnsemble:
    """Radial distributions of an ensemble of environments on a common grid.

    r : (R,) grid, Å.   curves : (K, R) n(r) of each member, atoms/Å.
    mean, std : (R,) mean and standard deviation over members.
    lo, hi : (R,) lower and upper quantiles (``quantiles`` given to :func:`ensemble_rdf`).
    """

    r: np.ndarray
    curves: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    quantiles: tuple[float, float]

    @property
    def n(self) -> int:
        return int(self.curves.shape[0])


def ensemble_rdf(
    envs: Sequence[Environment],
    r: ArrayLike | None = None,
    sigma: float = SIGMA,
    species: str | int | None = None,
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> RDFEnsemble:
    """Mean and spread of :func:`radial_distribution` over ``envs`` (e.g. generated samples).

    Returns an :class:`RDFEnsemble` (mean, std and the ``quantiles`` band, all atoms/Å).
    """
    envs = list(envs)
    if not envs:
        raise ValueError("ensemble_rdf: no environments given")
    lo_q, hi_q = quantiles
    if not 0.0 <= lo_q <= hi_q <= 1.0:
        raise ValueError(f"ensemble_rdf: quantiles must satisfy 0 <= lo <= hi <= 1; got {quantiles}")
    r = _grid(r)
    curves = np.stack([radial_distribution(e, r, sigma, species) for e in envs])
    lo, hi = np.quantile(curves, [lo_q, hi_q], axis=0)
    return RDFEnsemble(
        r=r,
        curves=curves,
        mean=curves.mean(axis=0),
        std=curves.std(axis=0),
        lo=lo,
        hi=hi,
        quantiles=(float(lo_q), float(hi_q)),
    )


def rdf_peaks(r: ArrayLike, g: ArrayLike, min_height: float = 0.05, min_separation: float = 0.2) -> np.ndarray:
    """Positions (Å) of the local maxima of ``g`` on grid ``r`` (uniform spacing assumed).

    Peaks lower than ``min_height`` times the global maximum, or closer than
    ``min_separation`` Å to a higher peak, are dropped.
    """
    r = _grid(r)
    g = np.asarray(g, dtype=np.float64)
    if g.shape != r.shape:
        raise ValueError(f"rdf_peaks: g has shape {g.shape}, r has {r.shape}")
    top = float(g.max()) if g.size else 0.0
    if top <= 0:
        return np.empty(0)
    dist = max(1, int(round(min_separation / float(np.mean(np.diff(r))))))
    idx, _ = find_peaks(g, height=min_height * top, distance=dist)
    return r[idx]


def integrate(r: ArrayLike, g: ArrayLike) -> float:
    """Trapezoid integral of ``g`` over ``r`` (atoms, for n(r) in atoms/Å)."""
    return float(_trapezoid(np.asarray(g, dtype=np.float64), np.asarray(r, dtype=np.float64)))
