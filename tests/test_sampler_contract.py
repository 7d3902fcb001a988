"""Small promises of the samplers (s2s.model.diffusion) that the statistical tests of test_fast_sampler.py
do not pin: the time grid's edge, the transition variance's form, the start state and silence without a
progress bar.  Written against the survivors of ``scripts/mutation.py samplers`` (docs/testing.md)."""

import numpy as np
import pytest
import torch
from torch import nn

from s2s.config import DiffusionConfig
from s2s.environment import O
from s2s.model.diffusion import Schedule, sample, sample_ddim, timesteps, transition_variance

torch.set_num_threads(1)


def test_one_step_grid_goes_from_T_to_zero_and_zero_steps_are_refused():
    assert timesteps(1000, 1) == [1000, 0]
    assert timesteps(10, 2) == [10, 5, 0]
    with pytest.raises(ValueError, match="n_steps"):
        timesteps(1000, 0)


def test_transition_variance_is_one_minus_alpha_squared_by_default_and_vdm_otherwise():
    # numbers that are not a variance-preserving triple, so the two forms differ
    a_ts = torch.tensor([0.9, 0.5], dtype=torch.float64)
    sg_t = torch.tensor([0.6, 0.8], dtype=torch.float64)
    sg_s = torch.tensor([0.3, 0.2], dtype=torch.float64)
    assert torch.equal(transition_variance(a_ts, sg_t, sg_s), 1.0 - a_ts**2)
    general = transition_variance(a_ts, sg_t, sg_s, variance_preserving=False)
    assert torch.allclose(general, sg_t**2 - a_ts**2 * sg_s**2)
    assert not torch.allclose(general, 1.0 - a_ts**2)


class _Recorder(nn.Module):
    """An eps-model that predicts zero noise and records the (z_x, z_h) of every call."""

    def __init__(self, n_species: int = 2):
        super().__init__()

        class C:
            pass

        self.cfg = C()
        self.cfg.n_species = n_species
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, z_x, z_h, t_frac, spectrum, node_mask, *args, **kwargs):
        self.calls.append((z_x.clone(), z_h.clone()))
        return torch.zeros_like(z_x), torch.zeros_like(z_h)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_the_first_network_call_sees_the_excited_oxygen_at_the_origin_with_its_species(sampler):
    cfg = DiffusionConfig(T=20)
    model = _Recorder()
    spectra = torch.rand(3, 16)
    n_atoms = torch.tensor([4, 2, 3])
    g = torch.Generator().manual_seed(0)
    run = sample if sampler == "ancestral" else sample_ddim
    run(model, spectra, n_atoms, Schedule(cfg), generator=g, n_steps=5)
    z_x, z_h = model.calls[0]
    expected = torch.zeros(3, 2)
    expected[:, O] = cfg.species_scale
    assert torch.equal(z_h[:, 0], expected)  # the excited atom: the scaled O one-hot, nothing subtracted
    assert torch.equal(z_x[:, 0], torch.zeros(3, 3))
    # padding atoms stay zero, movable atoms carry noise
    assert torch.equal(z_h[1, 2:], torch.zeros(2, 2)) and z_h[0, 1:4].abs().sum() > 0


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_no_progress_bar_unless_asked(sampler, capsys):
    cfg = DiffusionConfig(T=10)
    run = sample if sampler == "ancestral" else sample_ddim
    run(_Recorder(), torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), n_steps=3)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    run(_Recorder(), torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), n_steps=3, progress=True)
    assert "sampling" in capsys.readouterr().err


def test_grid_is_strictly_descending_and_unique_for_every_step_count():
    for n in range(1, 30):
        grid = timesteps(25, n)
        assert grid[0] == 25 and grid[-1] == 0
        assert np.all(np.diff(grid) < 0)


class _Fixed(nn.Module):
    """An x_0-predicting network that always proposes the same environment: Si at ``x`` (N,3) Å for every
    movable atom."""

    def __init__(self, x: torch.Tensor, scale: float, n_species: int = 2):
        super().__init__()

        class C:
            pass

        self.cfg = C()
        self.cfg.n_species = n_species
        self.x, self.scale = x, scale
        self.calls = 0
        self.t_frac: list[float] = []

    def forward(self, z_x, z_h, t_frac, spectrum, node_mask, *args, **kwargs):
        from s2s.environment import SI

        self.calls += 1
        self.t_frac.append(float(t_frac[0]))
        h = torch.zeros_like(z_h)
        h[..., SI] = self.scale
        return self.x[None, : z_x.shape[1]] - z_x, h


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_a_network_that_always_proposes_one_environment_gets_it_back(sampler):
    from s2s.environment import SI

    cfg = DiffusionConfig(T=30, parameterization="x0")
    x = torch.tensor([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0], [-0.5, 1.5, 0.0], [0.0, 0.3, -2.0]])
    model = _Fixed(x, cfg.species_scale)
    run = sample if sampler == "ancestral" else sample_ddim
    out = run(model, torch.rand(2, 16), torch.tensor([4, 3]), Schedule(cfg), n_steps=6, clip_radius=None)
    assert torch.allclose(out.x[0], x, atol=1e-5) and torch.allclose(out.x[1, :3], x[:3], atol=1e-5)
    assert torch.equal(out.x[1, 3], torch.zeros(3))  # padding
    assert out.species[:, 0].tolist() == [O, O]  # the excited atom is always O
    assert out.species[0, 1:].tolist() == [SI, SI, SI] and out.species[1, 1:3].tolist() == [SI, SI]


def test_ddim_takes_fifty_steps_by_default():
    cfg = DiffusionConfig(T=200, parameterization="x0")
    model = _Fixed(torch.zeros(3, 3), cfg.species_scale)
    sample_ddim(model, torch.rand(1, 16), torch.tensor([3]), Schedule(cfg))
    assert model.calls == 50 + 1  # 50 steps and the final decoding


def test_noise_scale_zero_is_allowed_and_negative_refused():
    cfg = DiffusionConfig(T=10)
    args = (_Recorder(), torch.rand(1, 16), torch.tensor([3]), Schedule(cfg))
    a = sample(*args, generator=torch.Generator().manual_seed(1), n_steps=4, noise_scale=0.0)
    b = sample(*args, generator=torch.Generator().manual_seed(1), n_steps=4, noise_scale=0.0)
    assert torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="noise_scale"):
        sample(*args, n_steps=4, noise_scale=-0.1)


def test_ddim_checks_each_noise_shape_and_the_start_time():
    cfg = DiffusionConfig(T=10)
    sch = Schedule(cfg)
    spectra, n_atoms = torch.rand(2, 16), torch.tensor([3, 2])
    good = (torch.zeros(2, 3, 3), torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="noise must have shapes"):
        sample_ddim(_Recorder(), spectra, n_atoms, sch, noise=(torch.zeros(2, 4, 3), good[1]))
    with pytest.raises(ValueError, match="noise must have shapes"):
        sample_ddim(_Recorder(), spectra, n_atoms, sch, noise=(good[0], torch.zeros(2, 3, 3)))
    with pytest.raises(ValueError, match="t_start"):  # SDEdit needs the noised state
        sample_ddim(_Recorder(), spectra, n_atoms, sch, t_start=5)
    with pytest.raises(ValueError, match="t_start"):
        sample_ddim(_Recorder(), spectra, n_atoms, sch, noise=good, t_start=0)
    # t_start = T is the ordinary sampler: no state needed, and the same samples as without it
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = sample_ddim(_Recorder(), spectra, n_atoms, sch, generator=g(), n_steps=4, t_start=cfg.T)
    b = sample_ddim(_Recorder(), spectra, n_atoms, sch, generator=g(), n_steps=4)
    assert torch.equal(a.x, b.x)


def test_deterministic_ddim_draws_nothing_from_the_generator():
    cfg = DiffusionConfig(T=10)
    g = torch.Generator().manual_seed(5)
    before = g.get_state().clone()
    noise = (torch.randn(1, 3, 3), torch.randn(1, 3, 2))
    sample_ddim(_Recorder(), torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), generator=g, noise=noise, n_steps=4)
    assert torch.equal(g.get_state(), before)
    sample_ddim(
        _Recorder(), torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), generator=g, noise=noise, n_steps=4, eta=0.5
    )
    assert not torch.equal(g.get_state(), before)


def test_species_estimates_are_clamped_to_zero_and_the_scale():
    from s2s.model.diffusion import clip_h0

    h = torch.tensor([-0.3, 0.1, 0.2, 0.7])
    assert torch.equal(clip_h0(h, 0.25), torch.tensor([0.0, 0.1, 0.2, 0.25]))
    assert torch.equal(clip_h0(h, None), h)


def test_sdedit_from_an_early_time_takes_its_share_of_the_steps_and_at_least_one():
    cfg = DiffusionConfig(T=100, parameterization="x0")
    sch = Schedule(cfg)
    noise = (torch.zeros(1, 3, 3), torch.zeros(1, 3, 2))
    for t_start, n_steps, steps in ((50, 10, 5), (5, 10, 1), (1, 10, 1), (1, None, 1), (40, None, 40)):
        model = _Fixed(torch.zeros(3, 3), cfg.species_scale)
        sample_ddim(model, torch.rand(1, 16), torch.tensor([3]), sch, noise=noise, t_start=t_start, n_steps=n_steps)
        assert model.calls == steps + 1, (t_start, n_steps)  # + the final decoding


@pytest.mark.parametrize(
    "t_start, n_steps, grid",
    [(50, 10, [50, 40, 30, 20, 10]), (60, 4, [60, 40, 20]), (7, None, list(range(7, 0, -1)))],
)
def test_sdedit_walks_down_an_even_grid_from_its_start_time(t_start, n_steps, grid):
    cfg = DiffusionConfig(T=100, parameterization="x0")
    model = _Fixed(torch.zeros(3, 3), cfg.species_scale)
    noise = (torch.zeros(1, 3, 3), torch.zeros(1, 3, 2))
    sample_ddim(
        model, torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), noise=noise, t_start=t_start, n_steps=n_steps
    )
    assert np.allclose(np.array(model.t_frac) * cfg.T, grid + [0])  # the network's times, then the decoding at 0


def test_ddim_visits_every_time_of_its_grid_in_order():
    cfg = DiffusionConfig(T=100, parameterization="x0")
    model = _Fixed(torch.zeros(3, 3), cfg.species_scale)
    sample_ddim(model, torch.rand(1, 16), torch.tensor([3]), Schedule(cfg), n_steps=4)
    assert np.allclose(np.array(model.t_frac) * cfg.T, [100, 75, 50, 25, 0])


def test_positions_are_clipped_to_the_radius_and_the_inside_kept():
    from s2s.model.diffusion import clip_x0

    x = torch.tensor([[[0.8, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]])
    out = clip_x0(x, 0.5)
    assert torch.allclose(torch.linalg.norm(out, dim=-1), torch.tensor([[0.5, 0.3, 0.0, 0.5]]))
    assert torch.allclose(out[0, 3], torch.tensor([0.3, 0.4, 0.0]))
    assert torch.equal(clip_x0(x, None), x)
