"""The full s2s model: EGNN denoiser + atom-count head, with its diffusion schedule."""

from __future__ import annotations

import torch
from torch import nn

from s2s.config import S2SConfig
from s2s.model.diffusion import Schedule, diffusion_loss
from s2s.model.egnn import EGNNDenoiser
from s2s.model.graph import GraphBatch
from s2s.model.natoms import AtomCountHead


class S2SModel(nn.Module):
    def __init__(self, cfg: S2SConfig, n_max: int = 64):
        super().__init__()
        self.cfg = cfg
        self.denoiser = EGNNDenoiser(cfg.model)
        self.natoms = AtomCountHead(cfg.model.spectrum_dim, n_max=n_max)
        self.schedule = Schedule(cfg.diffusion)

    def set_spectrum_statistics(self, spectra) -> None:
        """Per-bin statistics of the training spectra (M, L) for the spectrum encoder (no-op without one)."""
        if self.denoiser.encoder is not None:
            self.denoiser.encoder.set_statistics(torch.as_tensor(spectra, dtype=torch.float32))

    def loss(
        self, batch: GraphBatch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Diffusion L2 loss + atom-count cross entropy (separate parameters, summed)."""
        l_diff = diffusion_loss(self.denoiser, batch, self.schedule, generator)
        l_n = self.natoms.loss(batch.spectrum, batch.n_atoms)
        return l_diff + l_n, {"loss": l_diff.item(), "natoms_ce": l_n.item()}
