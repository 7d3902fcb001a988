"""Equivariant OT coupling of noise and data atoms, and the straight (flow-matching) path."""

import numpy as np
import pytest
import torch

from s2s.config import DiffusionConfig, S2SConfig, get_preset, replace
from s2s.model.coupling import couple_one, ot_couple, transport_cost
from s2s.model.diffusion import Schedule, alpha_schedule, q_sample, sample_ddim, sigma_schedule, transition_variance


def _cloud(n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=2.0, size=(n, 3))


def test_couple_one_undoes_a_permutation_and_a_small_orthogonal_map():
    """Alternating assignment and Procrustes is a local search: from the identity it finds a permuted copy
    exactly, and a permuted copy turned by a modest rotation (with or without a reflection, the EGNN's O(3))."""
    from scipy.spatial.transform import Rotation

    x0 = _cloud(9, 0)
    perm_true = np.random.default_rng(1).permutation(9)
    for q in (np.eye(3), Rotation.from_rotvec([0.3, -0.2, 0.25]).as_matrix(), np.diag([1.0, 1.0, -1.0])):
        eps = np.empty_like(x0)
        eps[perm_true] = x0 @ q.T  # noise atom perm_true[i] is data atom i, mapped by q
        perm, rot = couple_one(eps, x0, n_iter=4)
        np.testing.assert_array_equal(perm, perm_true)
        np.testing.assert_allclose(eps[perm] @ rot, x0, atol=1e-8)


def test_ot_couple_permutes_and_rotates_only_the_movable_atoms_and_lowers_the_cost():
    g = torch.Generator().manual_seed(0)
    b, n, k = 5, 8, 2
    counts = [8, 6, 4, 2, 1]
    mask = (torch.arange(n)[None] < torch.tensor(counts)[:, None]).double()
    movable = mask.clone()
    movable[:, 0] = 0
    x0 = torch.randn(b, n, 3, generator=g, dtype=torch.float64) * 2 * movable[..., None]
    ex = torch.randn(b, n, 3, generator=g, dtype=torch.float64) * movable[..., None]
    eh = torch.randn(b, n, k, generator=g, dtype=torch.float64) * movable[..., None]
    cx, ch = ot_couple(ex, eh, x0, movable)
    assert cx.shape == ex.shape and ch.shape == eh.shape
    # outside the movable atoms nothing changes (the excited O and padding stay zero)
    assert torch.equal(cx * (1 - movable[..., None]), ex * (1 - movable[..., None]))
    for gi, c in enumerate(counts):
        # an orthogonal map and a permutation: the multiset of norms and of species-noise rows is kept
        na = np.sort(torch.linalg.norm(ex[gi, 1:c], dim=-1).numpy())
        nb = np.sort(torch.linalg.norm(cx[gi, 1:c], dim=-1).numpy())
        np.testing.assert_allclose(na, nb, atol=1e-10)
        rows_a = sorted(map(tuple, eh[gi, 1:c].numpy().round(12)))
        rows_b = sorted(map(tuple, ch[gi, 1:c].numpy().round(12)))
        assert rows_a == rows_b
    before, after = transport_cost(ex, x0, movable), transport_cost(cx, x0, movable)
    assert torch.all(after <= before + 1e-12) and after.sum() < 0.8 * before.sum()


def test_linear_schedule_is_the_straight_path_and_its_transition_variance_is_general():
    cfg = DiffusionConfig(schedule="linear", parameterization="x0")
    t = np.arange(0, 1001, 50)
    np.testing.assert_allclose(alpha_schedule(t, cfg), 1 - t / 1000, atol=0)
    np.testing.assert_allclose(sigma_schedule(t, cfg), t / 1000, atol=0)
    assert not Schedule(cfg).variance_preserving and Schedule(DiffusionConfig()).variance_preserving
    with pytest.raises(ValueError, match="x0"):
        DiffusionConfig(schedule="linear")
    with pytest.raises(ValueError, match="coupling"):
        DiffusionConfig(coupling="sinkhorn")
    # sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2: for a VP schedule the same as 1 - alpha_{t|s}^2
    vp = DiffusionConfig()
    a = torch.as_tensor(alpha_schedule(np.array([700.0, 300.0]), vp))
    s_ = torch.as_tensor(sigma_schedule(np.array([700.0, 300.0]), vp))
    general = transition_variance(a[0] / a[1], s_[0], s_[1], variance_preserving=False)
    assert torch.allclose(general, transition_variance(a[0] / a[1], s_[0], s_[1], True), atol=1e-12)
    # on the straight path the transitions compose like a Markov chain: r -> s -> t has the variance of r -> t
    sch = Schedule(cfg)
    r, s, t = 100, 400, 900
    a_r, a_s, a_t = (sch.alpha[i] for i in (r, s, t))
    g_r, g_s, g_t = (sch.sigma[i] for i in (r, s, t))
    via_s = (a_t / a_s) ** 2 * transition_variance(a_s / a_r, g_s, g_r, False) + transition_variance(
        a_t / a_s, g_t, g_s, False
    )
    assert torch.allclose(via_s, transition_variance(a_t / a_r, g_t, g_r, False), atol=1e-12)
    # and from the clean state (s = 0: alpha 1, sigma 0) it is the marginal variance sigma_t^2
    assert torch.allclose(transition_variance(a_t / sch.alpha[0], g_t, sch.sigma[0], False), g_t**2)


class _Oracle(torch.nn.Module):
    """A "network" that always predicts the same clean environment (x0 parameterization)."""

    def __init__(self, target: torch.Tensor, cfg):
        super().__init__()
        self.target = target
        self.cfg = cfg
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z_x, z_h, t, spectrum, node_mask, **kw):
        h = torch.zeros_like(z_h)
        h[..., 1] = 0.25
        return self.target - z_x, h


def test_euler_steps_of_the_flow_reach_the_predicted_environment_and_the_path_is_straight():
    """On the straight path the deterministic DDIM step is the Euler step z_s = z_t + (s - t)/T (eps - x_hat):
    with a network that always predicts x, every intermediate state lies on the line from the noise to x."""
    cfg = DiffusionConfig(schedule="linear", parameterization="x0")
    sched = Schedule(cfg)
    x = torch.zeros(1, 4, 3)
    x[0, 1:] = torch.tensor([[1.6, 0, 0], [0, 1.6, 0], [0, 0, 1.6]])
    model = _Oracle(x, get_preset("tiny").model)
    g = torch.Generator().manual_seed(0)
    noise = (torch.randn(1, 4, 3, generator=g), torch.randn(1, 4, 2, generator=g))
    out = sample_ddim(model, torch.zeros(1, 200), [4], sched, n_steps=7, noise=noise, clip_radius=None)
    assert torch.allclose(out.x, x, atol=1e-6)
    assert out.species[0, 1:].tolist() == [1, 1, 1]
    # a single Euler step from t = T lands on the prediction as well
    one = sample_ddim(model, torch.zeros(1, 200), [4], sched, n_steps=1, noise=noise, clip_radius=None)
    assert torch.allclose(one.x, x, atol=1e-6)


def test_flow_recipe_trains_and_generates_by_its_ode_only(tmp_path):
    from test_recipe import _toy

    from s2s.model.sample import generate
    from s2s.model.train import train

    envs, spectra = _toy()
    v3 = get_preset("cpu_v3")
    cfg = S2SConfig(
        model=replace(v3.model, n_layers=2, hidden_dim=16, message_dim=8),
        diffusion=replace(v3.diffusion, schedule="linear", coupling="ot"),
        train=replace(v3.train, lr=1e-3, batch_size=4, epochs=100, checkpoint_every=50, log_every=5, seed=1),
    )
    res = train(cfg, envs, spectra, tmp_path / "flow", max_steps=12, progress=False)
    assert res.step == 12 and all(np.isfinite(r["loss"]) for r in res.history)
    model = res.model.eval()
    out = generate(model, spectra[:2], [e.n_atoms for e in envs[:2]], sampler="ddim", n_steps=5, seed=0)
    for env_list, e in zip(out, envs[:2]):
        assert env_list[0].n_atoms == e.n_atoms and np.all(np.isfinite(env_list[0].coords))
    # a stochastic step needs the independent-noise posterior, which a coupled model does not have
    for kw in ({"sampler": "ancestral"}, {"sampler": "ddim", "eta": 1.0}):
        with pytest.raises(ValueError, match="coupled noise"):
            generate(model, spectra[:2], [e.n_atoms for e in envs[:2]], n_steps=5, **kw)
    # the coupled loss is the same function of the same draws: a seed gives the same training
    again = train(cfg, envs, spectra, tmp_path / "flow2", max_steps=12, progress=False)
    for (k, a), (_, b) in zip(res.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_q_sample_with_ot_coupling_keeps_the_excited_atom_and_pairs_the_noise():
    cfg = DiffusionConfig(parameterization="x0", coupling="ot")
    sched = Schedule(cfg)
    mask = torch.ones(2, 6)
    x0 = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(3)) * 2
    x0[:, 0] = 0
    h0 = torch.zeros(2, 6, 2)
    h0[..., 1] = 0.25
    t = torch.tensor([1000, 1000])
    zi, _, ei, _ = q_sample(x0, h0, t, sched, mask, torch.Generator().manual_seed(0))
    zo, _, eo, _ = q_sample(x0, h0, t, sched, mask, torch.Generator().manual_seed(0), coupling="ot")
    assert torch.all(zo[:, 0] == 0)
    mv = torch.ones(2, 6)
    mv[:, 0] = 0
    assert transport_cost(eo, x0, mv).sum() < transport_cost(ei, x0, mv).sum()


def test_equivalent_step_matches_the_noise_level_across_schedules():
    from s2s.model.diffusion import equivalent_step

    paper, lin = DiffusionConfig(), DiffusionConfig(schedule="linear", parameterization="x0")
    assert equivalent_step(200, paper) == 200 and equivalent_step(777, paper) == 777
    for t in (50, 200, 500, 800):
        u = equivalent_step(t, lin)
        snr_p = alpha_schedule(t, paper) ** 2 / sigma_schedule(t, paper) ** 2
        snr_l = alpha_schedule(u, lin) ** 2 / sigma_schedule(u, lin) ** 2
        assert abs(np.log(snr_l / snr_p)) < 0.05
    # more noise on the paper's schedule is more noise on the straight path too
    assert equivalent_step(200, lin) < equivalent_step(500, lin) < equivalent_step(800, lin)


def test_a_continuation_may_change_the_coupling_but_not_the_schedule(tmp_path):
    from test_recipe import _toy

    from s2s.model.train import CHECKPOINT, train

    envs, spectra = _toy()
    v3 = get_preset("cpu_v3")
    cfg = S2SConfig(
        model=replace(v3.model, n_layers=2, hidden_dim=16, message_dim=8),
        diffusion=v3.diffusion,
        train=replace(v3.train, lr=1e-3, batch_size=4, epochs=100, checkpoint_every=5, log_every=5, seed=1),
    )
    train(cfg, envs, spectra, tmp_path / "a", max_steps=5, progress=False)
    ot = replace(cfg, diffusion=replace(cfg.diffusion, coupling="ot"))
    res = train(ot, envs, spectra, tmp_path / "b", max_steps=8, progress=False, init_from=tmp_path / "a" / CHECKPOINT)
    assert res.step == 8
    prov = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)["continued_from"]
    assert prov["diffusion_changed"] == {"coupling": {"from": "independent", "to": "ot"}}
    flow = replace(cfg, diffusion=replace(cfg.diffusion, coupling="ot", schedule="linear"))
    with pytest.raises(ValueError, match="diffusion configuration"):
        train(flow, envs, spectra, tmp_path / "c", max_steps=8, progress=False, init_from=tmp_path / "a" / CHECKPOINT)
