"""Spectrum-conditioned prediction of the number of atoms N in an environment.

The paper samples with the target's atom count.  Real use has no target, so a small
classifier p(N | s) is trained alongside the denoiser (cross entropy on the training
environments' sizes) and used to draw N, or its mode, at prediction time.
:func:`fit_atom_count_head` refits it alone, on spectra of any fidelity, leaving the denoiser as it is
(docs/fidelity.md, "Round 8").
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


def fit_atom_count_head(
    spectra,
    n_atoms,
    n_max: int,
    *,
    weights=None,
    init: AtomCountHead | None = None,
    hidden: int = 128,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> AtomCountHead:
    """Fit p(N | s) alone, on spectra of any fidelity, with the denoiser left as it is.

    The head is an independent MLP on the spectrum (it shares nothing with the denoiser), so a generator's
    head can be refitted on the spectra a user brings (e.g. first-principles ones) without touching the
    generator.  ``spectra`` (M, L) on the model's grid (unit area), ``n_atoms`` (M,) the environments'
    sizes, ``weights`` (M,) optional per-record weights of the cross entropy (e.g. to balance fidelities),
    ``init`` a head to start from (copied, e.g. the generator's own), else a fresh one of width ``hidden``.
    AdamW, minibatches of ``batch_size`` in a seeded order, ``epochs`` passes.  Deterministic for ``seed``.
    Returns the fitted head in eval mode."""
    import copy

    import numpy as np

    x = torch.as_tensor(np.asarray(spectra, dtype=np.float32))
    n = torch.as_tensor(np.asarray(n_atoms, dtype=np.int64))
    if x.ndim != 2 or n.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"fit_atom_count_head: spectra (M, L) and M counts, got {tuple(x.shape)} and {tuple(n.shape)}")
    if torch.any(n < 1) or torch.any(n > n_max):
        lo, hi = int(n.min()), int(n.max())
        raise ValueError(f"fit_atom_count_head: atom counts must be in 1..n_max={n_max}, got {lo}..{hi}")
    w = torch.ones(len(n)) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    if w.shape != n.shape or torch.any(w < 0) or float(w.sum()) <= 0:
        raise ValueError("fit_atom_count_head: weights must be M non-negative numbers, not all 0")
    g = torch.Generator().manual_seed(seed)
    if init is not None:
        if init.n_max != n_max:
            raise ValueError(f"fit_atom_count_head: init has n_max {init.n_max}, not {n_max}")
        head = copy.deepcopy(init).cpu()
    else:
        with torch.random.fork_rng():  # a seeded initialisation that leaves the caller's global RNG as it was
            torch.manual_seed(seed)
            head = AtomCountHead(x.shape[1], n_max=n_max, hidden=hidden)
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    target = n - 1
    for _ in range(epochs):
        order = torch.randperm(len(n), generator=g)
        for i in range(0, len(n), batch_size):
            idx = order[i : i + batch_size]
            ce = F.cross_entropy(head(x[idx]), target[idx], reduction="none")
            loss = (ce * w[idx]).sum() / w[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    return head
