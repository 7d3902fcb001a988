"""Equivariant optimal-transport coupling of noise and data atoms (flow matching; Klein et al. 2023,
Song et al. 2023 "EquiFM", Irwin et al. 2024 "SemlaFlow").

Training a generator draws, for every environment x_0 (N atoms, the excited O fixed at the origin),
a noise sample eps ~ N(0, I) of the same shape and regresses the path between them.  With an
independent draw, atom i of the noise is paired with atom i of the data whatever their positions,
so at high noise the network must predict the average over all N! pairings (and all orientations):
the permutation ambiguity that held the denoising probe near a linear-denoiser baseline (issue 14).
The coupling pairs them instead by the cheapest assignment up to the symmetries of the problem:

    P*, R* = argmin_{P permutation, R in O(3)} sum_i |R eps_{P(i)} - x_{0,i}|^2

solved approximately by alternating a Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`)
and an orthogonal Procrustes fit about the origin (the excited O; Kabsch without the determinant
correction, since the EGNN is O(3)-equivariant).  R eps_P is still N(0, I)-distributed over the
symmetries, so the generator's prior is unchanged and sampling starts from N(0, I) as before.
The species noise of each atom travels with its position noise.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _procrustes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Orthogonal R (3, 3) minimising |a R - b|^2 for points a, b (n, 3) about the origin."""
    u, _, vt = np.linalg.svd(a.T @ b)
    return u @ vt


def couple_one(eps: np.ndarray, x0: np.ndarray, n_iter: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Permutation and rotation of the noise atoms eps (n, 3) onto the data atoms x0 (n, 3), Å.

    Returns (perm (n,), R (3, 3)) such that ``eps[perm] @ R`` is the coupled noise: atom i of the data is
    paired with noise atom perm[i], rotated by R.  ``n_iter`` rounds of assignment then Procrustes, and a
    final assignment under the last rotation (so the returned pairing is optimal for the returned R).
    """
    n = eps.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.eye(3)
    rot = np.eye(3)
    perm = np.arange(n)
    for _ in range(max(1, n_iter)):
        moved = eps @ rot
        cost = ((x0[:, None, :] - moved[None, :, :]) ** 2).sum(-1)  # (data i, noise j)
        _, perm = linear_sum_assignment(cost)
        rot = _procrustes(eps[perm], x0)
    moved = eps @ rot
    cost = ((x0[:, None, :] - moved[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm.astype(np.int64), rot


def ot_couple(
    eps_x: torch.Tensor, eps_h: torch.Tensor, x0: torch.Tensor, movable: torch.Tensor, n_iter: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Couple a batch of noise draws to their environments (module docstring).

    eps_x (B, N, 3), eps_h (B, N, K): noise, zero outside ``movable``; x0 (B, N, 3) Å; movable (B, N) mask of
    the atoms that are generated (not the excited O, not padding).  Returns (eps_x', eps_h') of the same
    shapes: within each graph the movable noise atoms permuted (position and species noise together) and the
    positions rotated about the origin; everything outside ``movable`` unchanged.
    """
    ex = eps_x.detach().cpu().double().numpy()
    eh = eps_h.detach().cpu().numpy()
    xx = x0.detach().cpu().double().numpy()
    mv = movable.detach().cpu().numpy() > 0.5
    out_x, out_h = ex.copy(), eh.copy()
    for g in range(ex.shape[0]):
        idx = np.flatnonzero(mv[g])
        if idx.size == 0:
            continue
        perm, rot = couple_one(ex[g, idx], xx[g, idx], n_iter=n_iter)
        out_x[g, idx] = ex[g, idx[perm]] @ rot
        out_h[g, idx] = eh[g, idx[perm]]
    return (
        torch.as_tensor(out_x, dtype=eps_x.dtype).to(eps_x.device),
        torch.as_tensor(out_h, dtype=eps_h.dtype).to(eps_h.device),
    )


def transport_cost(eps_x: torch.Tensor, x0: torch.Tensor, movable: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared distance (Å^2) between paired noise and data atoms over the movable atoms."""
    d = ((eps_x - x0) ** 2).sum(-1) * movable
    return d.sum(1) / movable.sum(1).clamp(min=1.0)


__all__ = ["couple_one", "ot_couple", "transport_cost"]
