"""The rules that pick the Si-Si bonds of the a-Si parent that get an O (:mod:`s2s.amorphous.network`).

``uniform`` = random bonding (bonds drawn uniformly without replacement), ``clustered`` = random
mixture (the bonds whose midpoints are nearest to a random centre, minimum image: one SiO2 region
in an Si matrix), ``dispersed`` = random bonding conditioned on every Si having at least one O (no
Si(Si4) unit; uniform draws rejected until none is left).  Forced *bridges* (pairs of three-fold
Si of the parent) come first in the bond arrays and always get an O.
"""

from __future__ import annotations

import numpy as np

from s2s.amorphous.protocol import NetworkRejected

RULES = ("uniform", "clustered", "dispersed")
#: uniform draws tried by the ``dispersed`` rule before it gives up (x = 0.75 accepts ~2e-4 of them)
DISPERSED_TRIES = 200_000


def choose_bonds(
    rule: str,
    rng: np.random.Generator,
    bi: np.ndarray,
    bj: np.ndarray,
    D: np.ndarray,
    si_pos: np.ndarray,
    cell: np.ndarray,
    nb: int,
    n_o: int,
    n_si: int,
) -> np.ndarray:
    """Indices into ``(bi, bj, D)`` of the ``n_o`` bonds that get an O under ``rule`` (one of :data:`RULES`):
    the ``nb`` forced bridges (first in the arrays), then the drawn bonds in increasing order.

    ``D`` are the bond vectors i -> j (Å) in the scaled ``cell`` (rows, Å) with Si at ``si_pos`` (Å);
    ``rng`` is the seeded generator of :func:`s2s.amorphous.insertion.insert_oxygen`.
    """
    if rule == "uniform":
        return uniform_bonds(rng, len(bi) - nb, nb, n_o)
    if rule == "dispersed":
        return dispersed_bonds(rng, bi, bj, nb, n_o, n_si)
    return clustered_bonds(rng, bi, D, si_pos, cell, nb, n_o)


def uniform_bonds(rng: np.random.Generator, n_bonds: int, nb: int, n_o: int) -> np.ndarray:
    """The ``nb`` forced bridges plus ``n_o - nb`` of the other ``n_bonds`` bonds drawn uniformly
    without replacement (random bonding)."""
    return np.concatenate([np.arange(nb), nb + np.sort(rng.choice(n_bonds, size=n_o - nb, replace=False))])


def clustered_bonds(
    rng: np.random.Generator,
    bi: np.ndarray,
    D: np.ndarray,
    si_pos: np.ndarray,
    cell: np.ndarray,
    nb: int,
    n_o: int,
) -> np.ndarray:
    """The ``nb`` forced bridges plus the ``n_o - nb`` other bonds whose midpoints are nearest (minimum
    image, Å) to a random point of the cell (random mixture: one SiO2 region in an Si matrix)."""
    centre = rng.random(3) @ cell
    mid = si_pos[bi[nb:]] + 0.5 * D[nb:] - centre
    frac = np.linalg.solve(cell.T, mid.T).T
    mid = (frac - np.round(frac)) @ cell
    dist = np.linalg.norm(mid, axis=1) + 1e-9 * rng.random(len(bi) - nb)  # seeded tie break
    return np.concatenate([np.arange(nb), nb + np.sort(np.argsort(dist)[: n_o - nb])])


def dispersed_bonds(
    rng: np.random.Generator, bi: np.ndarray, bj: np.ndarray, nb: int, n_o: int, n_si: int
) -> np.ndarray:
    """Indices into (bi, bj) of the bonds that get an O under the ``dispersed`` rule: the ``nb``
    forced bridges plus uniform draws of the other bonds, redrawn until every Si has an O."""
    if 2 * n_o < n_si:
        raise ValueError(f"insert_oxygen: the dispersed rule needs x >= 0.5 (every Si an O), got {n_o} O for {n_si} Si")
    n_bonds = len(bi) - nb
    ends = np.stack([bi, bj], axis=1)
    for _ in range(DISPERSED_TRIES):
        chosen = np.concatenate([np.arange(nb), nb + np.sort(rng.choice(n_bonds, size=n_o - nb, replace=False))])
        if np.bincount(ends[chosen].ravel(), minlength=n_si).min() > 0:
            return chosen
    raise NetworkRejected(f"dispersed rule: no insertion without a Si(Si4) unit in {DISPERSED_TRIES} draws")
