"""Retrieval-guided refinement (SDEdit, Meng et al. 2022): template matching, then the model.

A method of its own beside the pure generator (never in its place): for each input spectrum take
the training environment whose spectrum is closest (min MSE, the paper's template matching,
:func:`s2s.retrieval.neighbours.nearest_by_mse`), noise it to step t0 of the forward process
(:func:`s2s.model.diffusion.q_sample`) and denoise it conditioned on the *input* spectrum
(:func:`s2s.model.diffusion.sample_ddim` from t0).  Small t0 keeps the template, t0 = T is the pure model;
t0 is chosen on the validation split.  The atom count is the template's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from s2s.environment import Environment
from s2s.geometry.shells import assign_shells
from s2s.model.diffusion import encode_species, q_sample, sample_ddim
from s2s.model.graph import collate, uncollate


@torch.no_grad()
def refine_templates(
    model,
    spectra: np.ndarray,
    templates: Sequence[Environment],
    t0: int,
    *,
    seed: int = 0,
    n_steps: int = 50,
    guidance: float = 0.0,
    batch_size: int = 64,
) -> list[Environment]:
    """One refined environment per spectrum (M, 200), started from ``templates[i]`` noised to step t0.

    ``model``: an :class:`s2s.model.S2SModel`; ``t0`` in 1..T; ``n_steps``: DDIM steps of the full
    range (the refinement takes ceil(n_steps t0 / T)).  Deterministic for a seed.
    """
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    if len(templates) != spectra.shape[0]:
        raise ValueError(f"refine_templates: {len(templates)} templates for {spectra.shape[0]} spectra")
    T = model.schedule.cfg.T
    if not 1 <= int(t0) <= T:
        raise ValueError(f"refine_templates: t0 must be in 1..{T}, got {t0}")
    gen = torch.Generator().manual_seed(seed)
    out: list[Environment] = []
    for start in range(0, len(templates), batch_size):
        envs = list(templates[start : start + batch_size])
        batch = collate(envs, spectra[start : start + batch_size])
        t = torch.full((batch.batch_size,), int(t0))
        h0 = encode_species(batch.h, model.schedule.cfg)
        z_x, z_h, _, _ = q_sample(batch.x, h0, t, model.schedule, batch.node_mask, gen)
        res = sample_ddim(
            model.denoiser,
            batch.spectrum,
            batch.n_atoms,
            model.schedule,
            gen,
            n_steps=n_steps,
            noise=(z_x, z_h),
            guidance=guidance,
            t_start=int(t0),
        )
        for k, (x, sp) in enumerate(uncollate(res.x, res.species, res.node_mask)):
            out.append(Environment(sp, x, assign_shells(x), meta={"spectrum_index": start + k, "t0": int(t0)}))
    return out


__all__ = ["refine_templates"]
