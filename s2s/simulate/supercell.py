"""Periodic cells for core-hole calculations: supercells far enough from their images, k-meshes, grids.

(Which O sites to compute: :func:`s2s.environment.unique_o_site_groups`, the one rule of the dataset.)

Pure geometry on (3, 3) cells (rows = lattice vectors, Å) and pymatgen structures, used by the GPAW reference
(:mod:`s2s.simulate.gpaw_ref`) and the xTB simulator (:mod:`s2s.simulate.xtb`), which share one supercell rule.
"""

from __future__ import annotations

import numpy as np


def shortest_lattice_vector(cell: np.ndarray) -> float:
    """Length (Å) of the shortest non-zero lattice vector of ``cell`` (rows = vectors)."""
    from ase.geometry import minkowski_reduce

    rcell, _ = minkowski_reduce(np.asarray(cell, float))
    return float(np.min(np.linalg.norm(rcell, axis=1)))


def find_supercell(cell: np.ndarray, min_image: float, max_coeff: int = 4) -> np.ndarray:
    """Smallest integer supercell matrix P (rows: new vectors = P @ cell) whose shortest lattice
    vector is >= ``min_image`` Å (the core hole's distance to its nearest periodic image).

    Searches triples of short integer lattice vectors (coefficients up to ``max_coeff``), ranked
    by |det P| (the number of cells); the diagonal answer is the fallback.  Deterministic.
    """
    cell = np.asarray(cell, float)
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(f"find_supercell: expected a non-singular (3, 3) cell, got {cell.shape}")
    diag = np.diag([max(1, int(np.ceil(min_image / np.linalg.norm(v) - 1e-9))) for v in cell])
    if shortest_lattice_vector(cell) >= min_image:
        return np.eye(3, dtype=int)
    r = np.arange(-max_coeff, max_coeff + 1)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    nz = n[np.any(n != 0, axis=1)]
    lead = nz[np.arange(len(nz)), np.argmax(nz != 0, axis=1)]
    nz = nz[lead > 0]  # one of +-v
    length = np.linalg.norm(nz @ cell, axis=1)
    keep = length >= min_image - 1e-9
    nz, length = nz[keep], length[keep]
    order = np.lexsort((np.abs(nz).sum(1), length))[:48]
    cand = nz[order]
    i, j, k = np.array(
        [(a, b, c) for a in range(len(cand)) for b in range(a + 1, len(cand)) for c in range(b + 1, len(cand))]
    ).T
    mats = np.stack([cand[i], cand[j], cand[k]], 1)
    dets = np.rint(np.abs(np.linalg.det(mats))).astype(int)
    best_det = int(round(abs(np.linalg.det(diag))))
    ok = (dets > 0) & (dets < best_det)
    mats = mats[ok][np.argsort(dets[ok], kind="stable")]
    # cheap necessary condition: no combination with coefficients in -2..2 is shorter
    c = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    c = c[np.any(c != 0, axis=1)]
    for start in range(0, len(mats), 4096):
        chunk = mats[start : start + 4096]
        vecs = np.einsum("ck,mkj->mcj", c, chunk @ cell)
        passing = np.flatnonzero(np.linalg.norm(vecs, axis=2).min(1) >= min_image - 1e-9)
        for idx in passing:
            P = chunk[idx]
            if shortest_lattice_vector(P @ cell) >= min_image - 1e-9:
                if np.linalg.det(P) < 0:
                    P = P[[1, 0, 2]]
                return P.astype(int)
    return diag.astype(int)


VALENCE = {"Si": 4, "O": 6}


def kpoint_mesh(cell: np.ndarray, length: float) -> list[int]:
    """Gamma-centred mesh with ``ceil(length / d_i)`` points along each reciprocal vector, ``d_i`` (Å) the
    spacing of the lattice planes it is normal to (``length`` in Å, as VASP's automatic R_k); 0 -> [1, 1, 1]."""
    if length < 0:
        raise ValueError(f"kpoint_mesh: length must be >= 0 Å, got {length}")
    plane_spacing = (np.linalg.inv(np.asarray(cell, float)) ** 2).sum(0) ** -0.5
    return [max(1, int(np.ceil(length / d - 1e-9))) for d in plane_spacing]


def grid_points(cell: np.ndarray, h: float, divisor: int = 4) -> list[int]:
    """Real-space grid points along each cell vector for spacing ``h`` (Å), each a multiple of ``divisor``.

    The spacing is measured between lattice planes (as GPAW's ``h2gpts``), so with ``divisor=4`` this
    is the grid GPAW would choose from ``h`` itself; the driver passes it explicitly (``gpts``) so that
    every record names its grid and a cell whose default grid fails can be retried on another.
    """
    if not h > 0 or divisor < 1:
        raise ValueError(f"grid_points: h must be > 0 Å and divisor >= 1, got h={h}, divisor={divisor}")
    plane_spacing = (np.linalg.inv(np.asarray(cell, float)) ** 2).sum(0) ** -0.5  # Å, (3,)
    return [int(n) for n in np.maximum(divisor, (plane_spacing / h / divisor + 0.5).astype(int) * divisor)]


def pw_band_count(symbols: list[str], volume: float, e_max: float = 30.0, factor: float = 1.5) -> tuple[int, int]:
    """(nbands, converge_bands) for pw mode: the occupied bands plus ``factor`` x the
    free-electron number of empty bands up to ``e_max`` eV above the onset in ``volume`` Å^3
    (V k^3 / 6 pi^2, k^2 = E / 3.81 eV Å^2); the top 20 % of the empty bands are left
    unconverged (Davidson converges the rest)."""
    n_occ = sum(VALENCE[x] for x in symbols) // 2
    k3 = (e_max / 3.80998) ** 1.5
    n_empty = int(np.ceil(factor * volume * k3 / (6 * np.pi**2)))
    return n_occ + n_empty, -max(1, n_empty // 5)


__all__ = ["shortest_lattice_vector", "find_supercell", "kpoint_mesh", "grid_points", "pw_band_count"]
