"""Retrieval-guided refinement: a template noised to t0 and denoised by the model."""

import numpy as np
import pytest
import torch

from s2s.config import get_preset
from s2s.environment import SI, Environment, O
from s2s.geometry.metrics import evaluate_pair
from s2s.model import S2SModel
from s2s.model.refine import refine_templates

torch.set_num_threads(1)


def _templates():
    th = np.deg2rad(145.0)
    a = Environment([O, SI, SI], [[0, 0, 0], [1.6, 0, 0], [1.6 * np.cos(th), 1.6 * np.sin(th), 0]], [0, 1, 1])
    b = Environment([O, SI], [[0, 0, 0], [0, 0, 1.7]], [0, 1])
    return [a, b]


def test_small_t0_keeps_the_template_large_t0_does_not_and_seeds_repeat():
    torch.manual_seed(0)
    model = S2SModel(get_preset("tiny")).eval()  # untrained: it only perturbs
    tm = _templates()
    spectra = np.full((2, 200), 0.05)
    near = refine_templates(model, spectra, tm, t0=1, seed=3)
    assert [e.n_atoms for e in near] == [3, 2]
    assert all(evaluate_pair(t, g)["rmsd_all"] < 0.05 for t, g in zip(tm, near))
    far = refine_templates(model, spectra, tm, t0=900, seed=3)
    assert max(evaluate_pair(t, g)["rmsd_all"] for t, g in zip(tm, far)) > 0.2
    again = refine_templates(model, spectra, tm, t0=900, seed=3)
    assert all(np.array_equal(x.coords, y.coords) for x, y in zip(far, again))
    with pytest.raises(ValueError, match="t0"):
        refine_templates(model, spectra, tm, t0=0)
    with pytest.raises(ValueError, match="templates"):
        refine_templates(model, spectra[:1], tm, t0=10)
