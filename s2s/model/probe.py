"""Denoising probe: does the network read the spectrum?

Noise a target environment to step t (:func:`s2s.model.diffusion.q_sample`), ask the network for the
clean coordinates x_hat (:func:`s2s.model.diffusion.model_predictions`) once with the site's own spectrum
and once with another site's (spectra rolled by one place), and compare the x_0 RMSE (Å) over the
movable atoms.  The atoms keep their identities under the noise, so no alignment is needed.
The gap (other spectrum minus own spectrum) is the conditioning signal: ~0 means the network
ignores the spectrum at that noise level.  Steps t are those of the paper's schedule: a model on
another schedule (the straight path of flow matching) is probed at its step of the same SNR
(:func:`s2s.model.diffusion.equivalent_step`), and a model trained on OT-coupled noise
(:mod:`s2s.model.coupling`) with its noise coupled the same way: z_t then lies where that model's
training put it (the coupled path's marginal), which is also where its sampler takes it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from s2s.environment import Environment
from s2s.model.diffusion import encode_species, equivalent_step, model_predictions, movable_mask, q_sample
from s2s.model.graph import collate


@torch.no_grad()
def x0_rmse(
    model, environments: Sequence[Environment], spectra: np.ndarray, t: int, seed: int = 0, batch_size: int = 64
) -> float:
    """RMSE (Å) of the network's x_0 estimate at step t (of the paper's schedule) over all movable atoms.

    ``model``: an :class:`s2s.model.S2SModel`; ``spectra`` (M, 200) are given to the network as they
    are (pass shuffled spectra to measure the conditioning).  The noise is fixed by ``seed``.
    """
    sq, count = 0.0, 0.0
    t = equivalent_step(int(t), model.schedule.cfg)
    for start in range(0, len(environments), batch_size):
        envs = list(environments[start : start + batch_size])
        batch = collate(envs, np.asarray(spectra)[start : start + batch_size])
        gen = torch.Generator().manual_seed(seed * 100003 + start)
        tt = torch.full((batch.batch_size,), int(t))
        h0 = encode_species(batch.h, model.schedule.cfg)
        z_x, z_h, _, _ = q_sample(batch.x, h0, tt, model.schedule, batch.node_mask, gen, model.schedule.cfg.coupling)
        x_hat, _, _, _ = model_predictions(
            model.denoiser, z_x, z_h, tt, batch.spectrum, batch.node_mask, model.schedule
        )
        mm = movable_mask(batch.node_mask)
        sq += float((((x_hat - batch.x) ** 2).sum(-1) * mm).sum())
        count += float(mm.sum())
    return float(np.sqrt(sq / max(count, 1.0)))


def conditioning_gap(
    model, environments: Sequence[Environment], spectra: np.ndarray, ts: Sequence[int] = (200, 500), seed: int = 0
) -> dict[int, float]:
    """{t: x0 RMSE with other sites' spectra minus with their own} (Å) for each step t."""
    spectra = np.asarray(spectra)
    if len(environments) < 2:
        raise ValueError("conditioning_gap: needs at least two environments (their spectra are swapped)")
    other = np.roll(spectra, 1, axis=0)
    return {
        int(t): x0_rmse(model, environments, other, t, seed) - x0_rmse(model, environments, spectra, t, seed)
        for t in ts
    }


def probe_table(
    model,
    environments: Sequence[Environment],
    spectra: np.ndarray,
    ts: Sequence[int] = (50, 200, 300, 500, 800),
    seed: int = 0,
) -> list[dict]:
    """Rows {t, rmse_true, rmse_shuffled, gap} (Å) of the probe at each step t."""
    spectra = np.asarray(spectra)
    other = np.roll(spectra, 1, axis=0)
    rows = []
    for t in ts:
        true = x0_rmse(model, environments, spectra, t, seed)
        shuf = x0_rmse(model, environments, other, t, seed)
        rows.append({"t": int(t), "rmse_true": true, "rmse_shuffled": shuf, "gap": shuf - true})
    return rows


__all__ = ["x0_rmse", "conditioning_gap", "probe_table"]
