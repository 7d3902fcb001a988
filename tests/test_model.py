"""EGNN equivariance, schedule formula, batching and masks."""

import numpy as np
import pytest
import torch
from helpers import assert_equivariant, random_batch

from s2s.config import DiffusionConfig, ModelConfig, get_preset, paper_config
from s2s.model.diffusion import Schedule, alpha_schedule, q_sample, sigma_schedule, timesteps
from s2s.model.egnn import EGNNDenoiser
from s2s.model.graph import edge_mask

TOL = 1e-9  # float64 throughout these tests


def make_net(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layers=3, hidden_dim=32, message_dim=16, **kw)
    return EGNNDenoiser(cfg).double().eval()


@pytest.mark.parametrize("every_layer", [False, True])
def test_egnn_rotation_reflection_permutation_equivariance(every_layer):
    net = make_net(spectrum_every_layer=every_layer)
    batch, h = random_batch()
    t = torch.tensor([0.3, 0.7, 0.01], dtype=torch.float64)

    def fn(x, hh):
        return net(x, hh, t, batch.spectrum, batch.node_mask)

    assert_equivariant(fn, batch.x, h, n_real=7, seed=1, atol=TOL)
    # the output is not trivially zero
    ex, eh = fn(batch.x, h)
    assert ex.abs().max() > 1e-6 and eh.abs().max() > 1e-3


def test_assert_equivariant_catches_broken_symmetry():
    """The shared check can fail: a fixed direction, a chiral (cross-product) vector, a scalar that
    reads a coordinate, and an output that depends on the atom order are all caught."""
    batch, h = random_batch()
    x = batch.x
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype)
    rank = torch.arange(x.shape[1], dtype=x.dtype)[None, :, None]
    broken = {
        "vector output": lambda x, h: (x + ez, h.sum(-1, keepdims=True) + x.norm(dim=-1, keepdim=True)),
        "reflect=True": lambda x, h: (torch.cross(x, x.roll(1, dims=1), dim=-1), x.norm(dim=-1, keepdim=True)),
        "scalar output": lambda x, h: (x, x[..., :1] + 1.0),
        "permutation": lambda x, h: (x * (1.0 + rank), x.norm(dim=-1, keepdim=True) + 1.0),
    }
    for what, fn in broken.items():
        with pytest.raises(AssertionError, match=what):
            assert_equivariant(fn, x, h, n_real=7)
    assert_equivariant(lambda x, h: (x * h[..., :1], x.norm(dim=-1, keepdim=True) + h), x, h, n_real=7)


def test_egnn_permutation_equivariance_and_excited_atom_fixed():
    net = make_net()
    batch, h = random_batch()
    t = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    ex, eh = net(batch.x, h, t, batch.spectrum, batch.node_mask)
    # permute the atoms 1..6 of the first graph (7 real atoms)
    perm = torch.tensor([0, 4, 1, 6, 2, 5, 3])
    x2, h2 = batch.x.clone(), h.clone()
    x2[0], h2[0] = batch.x[0, perm], h[0, perm]
    ex2, eh2 = net(x2, h2, t, batch.spectrum, batch.node_mask)
    assert torch.allclose(ex2[0], ex[0, perm], atol=TOL)
    assert torch.allclose(eh2[0], eh[0, perm], atol=TOL)
    # the excited O (index 0) and padding never move
    assert torch.all(ex[:, 0] == 0) and torch.all(eh[:, 0] == 0)
    assert torch.all(ex[1, 5:] == 0) and torch.all(ex[2, 3:] == 0)


def test_padding_does_not_change_a_graph():
    net = make_net()
    batch, h = random_batch()
    t = torch.tensor([0.2, 0.2, 0.2], dtype=torch.float64)
    ex, eh = net(batch.x, h, t, batch.spectrum, batch.node_mask)
    k = 3  # third graph alone, no padding
    ex1, eh1 = net(batch.x[2:, :k], h[2:, :k], t[2:], batch.spectrum[2:], batch.node_mask[2:, :k])
    assert torch.allclose(ex1[0], ex[2, :k], atol=TOL)
    assert torch.allclose(eh1[0], eh[2, :k], atol=TOL)


def test_spectrum_changes_the_prediction():
    net = make_net()
    batch, h = random_batch()
    t = torch.full((3,), 0.4, dtype=torch.float64)
    ex, _ = net(batch.x, h, t, batch.spectrum, batch.node_mask)
    ex2, _ = net(batch.x, h, t, batch.spectrum.flip(-1), batch.node_mask)
    assert (ex - ex2).abs().max() > 1e-8


def test_edge_mask_has_no_self_loops_or_padding():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    e = edge_mask(mask)
    assert e.tolist() == [[[0, 1, 0], [1, 0, 0], [0, 0, 0]]]


def test_schedule_matches_paper_formula():
    cfg = DiffusionConfig()
    assert (cfg.T, cfg.s, cfg.power) == (1000, 1e-5, 2.0)
    t = np.array([0, 1, 250, 500, 999, 1000])
    expected = (1 - 2e-5) * (1 - (t / 1000) ** 2) ** 2 + 1e-5
    np.testing.assert_allclose(alpha_schedule(t, cfg), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sigma_schedule(t, cfg), np.sqrt(1 - expected**2), rtol=1e-12)
    # hand values: t=500 -> (1-2e-5)*0.5625 + 1e-5
    assert alpha_schedule(500, cfg) == pytest.approx(0.5625 * (1 - 2e-5) + 1e-5, abs=1e-15)
    a = alpha_schedule(np.arange(1001), cfg)
    assert np.all(np.diff(a) < 0) and a[0] == pytest.approx(1 - 1e-5) and a[-1] == pytest.approx(1e-5)
    edm = DiffusionConfig(schedule="edm")
    np.testing.assert_allclose(alpha_schedule(t, edm) ** 2, expected, atol=1e-15)


def test_q_sample_statistics_and_fixed_excited_atom():
    cfg = DiffusionConfig()
    sch = Schedule(cfg)
    b, n = 4000, 3
    x0 = torch.zeros(b, n, 3, dtype=torch.float64)
    x0[:, 1, 0] = 1.6
    h0 = torch.zeros(b, n, 2, dtype=torch.float64)
    mask = torch.ones(b, n, dtype=torch.float64)
    t = torch.full((b,), 500)
    g = torch.Generator().manual_seed(0)
    z_x, z_h, eps_x, _ = q_sample(x0, h0, t, sch, mask, g)
    a, s = alpha_schedule(500, cfg), sigma_schedule(500, cfg)
    assert torch.all(z_x[:, 0] == 0) and torch.all(eps_x[:, 0] == 0)
    assert z_x[:, 1, 0].mean().item() == pytest.approx(a * 1.6, abs=0.05)
    assert z_x[:, 1, 0].std().item() == pytest.approx(s, rel=0.05)


def test_timesteps_grid():
    assert timesteps(1000) == list(range(1000, -1, -1))
    g = timesteps(1000, 50)
    assert g[0] == 1000 and g[-1] == 0 and len(g) == 51 and all(a > b for a, b in zip(g, g[1:]))


def test_presets():
    p = paper_config()
    assert (p.model.n_layers, p.model.hidden_dim, p.model.message_dim) == (5, 1024, 256)
    assert (p.train.lr, p.train.weight_decay, p.train.ema_beta, p.train.batch_size) == (1e-4, 1e-12, 0.999, 1)
    assert get_preset("cpu").model.hidden_dim == 128
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")
