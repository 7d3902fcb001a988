"""Device plumbing: every tensor of training and sampling lives on the model's device.

The meta device stands in for a GPU on a CPU-only machine: an operation that mixes a meta tensor
with one created on the CPU by mistake raises ("Tensor on device cpu is not on the expected device
meta"), so these tests fail if any tensor of the loss or the samplers is made on the wrong device.
"""

import numpy as np
import pytest
import torch

from s2s.config import get_preset, replace
from s2s.environment import SI, Environment, O
from s2s.model import S2SModel
from s2s.model.diffusion import diffusion_loss, sample, sample_ddim
from s2s.model.graph import collate
from s2s.model.sample import generate
from s2s.model.train import train


def _batch():
    envs = [
        Environment([O, SI, SI], [[0, 0, 0], [1.6, 0, 0], [-1.5, 0.6, 0]], [0, 1, 1]),
        Environment([O, SI], [[0, 0, 0], [0, 1.6, 0]], [0, 1]),
    ]
    return envs, np.full((2, 200), 0.05)


@pytest.mark.parametrize("recipe", ["tiny", "tiny_v3", "gpu_v3"])
def test_loss_and_samplers_stay_on_the_model_device(recipe):
    cfg = get_preset("gpu_v3" if recipe == "gpu_v3" else "tiny")
    if recipe == "tiny_v3":
        v3 = get_preset("cpu_v3")
        cfg = replace(
            cfg, model=replace(cfg.model, spectrum_encoder="film", self_condition=True), diffusion=v3.diffusion
        )
    model = S2SModel(cfg).to("meta")
    envs, spectra = _batch()
    batch = collate(envs, spectra).to("meta")
    loss = diffusion_loss(model.denoiser, batch, model.schedule, torch.Generator().manual_seed(0))
    assert loss.device.type == "meta"
    loss.backward()
    spec = torch.full((2, 200), 0.05, device="meta")
    gen = torch.Generator().manual_seed(0)
    out = sample_ddim(model.denoiser, spec, torch.tensor([3, 2]), model.schedule, gen, n_steps=3, guidance=1.0)
    assert out.x.device.type == "meta" and out.species.device.type == "meta"
    out = sample(model.denoiser, spec, torch.tensor([3, 2]), model.schedule, gen, n_steps=3)
    assert out.x.device.type == "meta"
    assert model.natoms.probabilities(spec).device.type == "meta"


def test_a_seed_gives_the_same_samples_whatever_device_argument():
    cfg = get_preset("tiny")
    envs, spectra = _batch()
    res = train(cfg, envs * 4, np.repeat(spectra, 4, axis=0), None, max_steps=3, progress=False, device="cpu")
    a = generate(res.model, spectra, [3, 2], seed=1, sampler="ddim", n_steps=4)
    b = generate(res.model, spectra, [3, 2], seed=1, sampler="ddim", n_steps=4, device="cpu")
    assert np.array_equal(a[0][0].coords, b[0][0].coords)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/device_fidelity.sh runs it)")
def test_training_and_sampling_on_a_gpu_match_the_cpu():
    """On a GPU: train a few steps there, and the same seed samples the same environments as on the CPU (the
    noise is drawn on the CPU; only float rounding differs)."""
    cfg = get_preset("tiny")
    envs, spectra = _batch()
    res = train(cfg, envs * 4, np.repeat(spectra, 4, axis=0), None, max_steps=3, progress=False, device="cuda")
    assert next(res.model.parameters()).device.type == "cuda"
    on_gpu = generate(res.model, spectra, [3, 2], seed=1, sampler="ddim", n_steps=4, device="cuda")
    on_cpu = generate(res.model, spectra, [3, 2], seed=1, sampler="ddim", n_steps=4, device="cpu")
    for g, c in zip(on_gpu, on_cpu):
        assert np.allclose(g[0].coords, c[0].coords, atol=1e-3)
        assert list(g[0].species) == list(c[0].species)
