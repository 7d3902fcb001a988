"""Graphs: environments padded into batched tensors.

A batch of B environments with at most N atoms is held as

- ``x``        (B, N, 3)  coordinates, Å, excited O at index 0 at the origin
- ``h``        (B, N, 2)  one-hot species (order ``s2s.environment.SPECIES``)
- ``spectrum`` (B, 200)   the excited O's spectrum on the paper's grid
- ``node_mask``(B, N)     1 for real atoms, 0 for padding
- ``fidelity`` (B,)       the spectra's fidelity flags (1 first principles, 0 xTB), or None; only a model with
                          ``ModelConfig.fidelity_input`` reads them (:func:`s2s.site_record.fidelity_flag`)

The graph is fully connected among real atoms (paper, Methods).  The spectrum
matrix S = (s, 0, ..., 0) of the paper is formed inside the model from
``spectrum`` and the excited-atom position (index 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from s2s.environment import SPECIES, Environment
from s2s.site_record import fidelity_flags


@dataclass
class GraphBatch:
    x: torch.Tensor
    h: torch.Tensor
    spectrum: torch.Tensor
    node_mask: torch.Tensor
    fidelity: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_atoms(self) -> torch.Tensor:
        """(B,) number of real atoms per graph."""
        return self.node_mask.sum(dim=1).long()

    def to(self, device: torch.device | str) -> "GraphBatch":
        return GraphBatch(
            *(t.to(device) for t in (self.x, self.h, self.spectrum, self.node_mask)),
            fidelity=None if self.fidelity is None else self.fidelity.to(device),
        )


def edge_mask(node_mask: torch.Tensor) -> torch.Tensor:
    """(B, N, N) mask of the fully connected graph without self-loops."""
    n = node_mask.shape[1]
    eye = torch.eye(n, dtype=node_mask.dtype, device=node_mask.device)
    return node_mask[:, :, None] * node_mask[:, None, :] * (1.0 - eye)


def collate(
    environments: Sequence[Environment],
    spectra: np.ndarray | Sequence[np.ndarray],
    dtype: torch.dtype = torch.float32,
    fidelity: np.ndarray | Sequence[float] | None = None,
) -> GraphBatch:
    """Pad environments (and their spectra, (B, 200), and fidelity flags (B,) or None) into a :class:`GraphBatch`."""
    spectra = np.asarray(spectra, dtype=np.float64)
    if len(environments) == 0:
        raise ValueError("collate: no environments")
    if spectra.ndim != 2 or spectra.shape[0] != len(environments):
        raise ValueError(f"collate: expected spectra of shape ({len(environments)}, L), got {spectra.shape}")
    b = len(environments)
    n = max(e.n_atoms for e in environments)
    x = np.zeros((b, n, 3))
    h = np.zeros((b, n, len(SPECIES)))
    mask = np.zeros((b, n))
    for i, env in enumerate(environments):
        k = env.n_atoms
        x[i, :k] = env.coords - env.coords[0]
        h[i, :k] = env.one_hot()
        mask[i, :k] = 1.0
    return GraphBatch(
        x=torch.as_tensor(x, dtype=dtype),
        h=torch.as_tensor(h, dtype=dtype),
        spectrum=torch.as_tensor(spectra, dtype=dtype),
        node_mask=torch.as_tensor(mask, dtype=dtype),
        fidelity=None if fidelity is None else torch.as_tensor(fidelity_flags(fidelity, b), dtype=dtype),
    )


def uncollate(x: torch.Tensor, species: torch.Tensor, node_mask: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split padded (B, N, 3) coordinates and (B, N) species indices into per-graph arrays."""
    out = []
    for xi, si, mi in zip(x.detach().cpu().numpy(), species.detach().cpu().numpy(), node_mask.detach().cpu().numpy()):
        k = int(round(mi.sum()))
        out.append((xi[:k].astype(np.float64), si[:k].astype(np.int64)))
    return out
