"""Spectrum-conditioned prediction of the number of atoms N in an environment.

The paper samples with the target's atom count.  Real use has no target, so a small
classifier p(N | s) is trained alongside the denoiser (cross entropy on the training
environments' sizes) and used to draw N, or its mode, at prediction time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AtomCountHead(nn.Module):
    """MLP: spectrum (B, L) -> logits over N = 1..n_max (B, n_max)."""

    def __init__(self, spectrum_dim: int = 200, n_max: int = 64, hidden: int = 128):
        super().__init__()
        self.n_max = n_max
        self.net = nn.Sequential(
            nn.Linear(spectrum_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_max)
        )

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        # spectra have unit area on a 0.1 eV grid, i.e. values ~0.05-1; rescale to O(1)
        return self.net(spectrum * 10.0)

    def loss(self, spectrum: torch.Tensor, n_atoms: torch.Tensor) -> torch.Tensor:
        """Cross entropy of the true counts (B,) under p(N | s)."""
        target = n_atoms.long().clamp(1, self.n_max) - 1
        return F.cross_entropy(self(spectrum), target)

    @torch.no_grad()
    def probabilities(self, spectrum: torch.Tensor) -> torch.Tensor:
        """(B, n_max) p(N = k + 1 | s)."""
        return torch.softmax(self(spectrum), dim=-1)

    @torch.no_grad()
    def predict(
        self, spectrum: torch.Tensor, mode: str = "argmax", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B,) atom counts on the CPU: the most probable N ("argmax") or a draw from p(N | s) ("sample")."""
        p = self.probabilities(spectrum.to(next(self.parameters()).device)).cpu()
        if mode == "argmax":
            return p.argmax(-1) + 1
        if mode == "sample":
            return torch.multinomial(p, 1, generator=generator)[:, 0] + 1
        raise ValueError(f"mode must be 'argmax' or 'sample', got {mode!r}")
