"""Shells of an O-centred environment: which atoms the excited O reaches in one, two, three bond hops.

* :func:`assign_shells` - shell index of every atom by graph hops from atom 0 (the excited O), the
  same rule as the environment builder (2.0 Å bonds);
* :func:`coordination_numbers` - atoms per shell;
* :func:`angles_deg` - bond angles at a centre.

Distances in Å, angles in degrees.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from s2s.environment import DEFAULT_CUTOFF

N_SHELLS = 3


def assign_shells(coords: np.ndarray, cutoff: float = DEFAULT_CUTOFF, n_shells: int = N_SHELLS) -> np.ndarray:
    """Shell index of every atom by graph hops from atom 0 (the excited O).

    coords: (N, 3) in Å.  Two atoms are bonded when their distance is <= ``cutoff``
    (Å).  Atom 0 gets 0; an atom first reached after k hops gets k for
    k <= n_shells; atoms farther away or not connected get ``n_shells + 1``
    (unassigned).  For a target built by the environment builder this reproduces
    its shell labels.
    """
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] == 0:
        raise ValueError(f"assign_shells: coords must have shape (N, 3) with N >= 1, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("assign_shells: coords contains NaN/inf")
    adj = cdist(c, c) <= cutoff
    np.fill_diagonal(adj, False)
    n = c.shape[0]
    shell = np.full(n, n_shells + 1, dtype=np.int64)
    shell[0] = 0
    frontier = np.zeros(n, dtype=bool)
    frontier[0] = True
    seen = frontier.copy()
    for k in range(1, n_shells + 1):
        new = adj[frontier].any(axis=0) & ~seen
        if not new.any():
            break
        shell[new] = k
        seen |= new
        frontier = new
    return shell


def coordination_numbers(shell: np.ndarray, n_shells: int = N_SHELLS) -> np.ndarray:
    """(n_shells,) counts of atoms in shells 1..n_shells."""
    shell = np.asarray(shell)
    return np.array([int(np.sum(shell == k)) for k in range(1, n_shells + 1)], dtype=np.int64)


def angles_deg(center: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Angles (degrees) at ``center`` (3,) between every pair of vectors to ``ends`` (n, 3), pairs i < j."""
    v = ends - center
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    i, j = np.triu_indices(len(v), 1)
    return np.degrees(np.arccos(np.clip(np.sum(v[i] * v[j], axis=1), -1.0, 1.0)))


__all__ = ["N_SHELLS", "angles_deg", "assign_shells", "coordination_numbers"]
