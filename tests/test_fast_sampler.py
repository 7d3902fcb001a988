"""The few-step DDIM sampler (s2s.model.diffusion.sample_ddim) and generate(sampler=...)."""

import numpy as np
import pytest
import torch
from helpers import random_orthogonal
from torch import nn

from s2s.config import DiffusionConfig, tiny_preset
from s2s.environment import SI, O
from s2s.model import S2SModel
from s2s.model.diffusion import Schedule, sample, sample_ddim
from s2s.model.sample import generate

torch.set_num_threads(1)


def _random_model(seed: int = 0) -> S2SModel:
    """A tiny S2SModel with random weights and non-negligible coordinate updates."""
    torch.manual_seed(seed)
    m = S2SModel(tiny_preset(), n_max=8)
    with torch.no_grad():
        for layer in m.denoiser.modules():
            if isinstance(layer, nn.Sequential) and isinstance(layer[-1], nn.Linear) and layer[-1].out_features == 1:
                layer[-1].weight.normal_(0.0, 0.3)
    m.eval()
    return m


def _spectra(b: int, seed: int = 0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    s = g.random((b, 200)).astype(np.float32)
    return torch.as_tensor(s / s.sum(1, keepdims=True) / 0.1)


class GaussianOracle(nn.Module):
    """The exact eps-predictor when every movable coordinate is x_0 ~ N(mu, s^2) independently
    and every species channel h_0 ~ N(mu_h, s_h^2): E[x_0 | z_t] in closed form."""

    def __init__(self, schedule: Schedule, mu=0.7, s=0.5, mu_h=0.1, s_h=0.05):
        super().__init__()
        self.sch, self.mu, self.s, self.mu_h, self.s_h = schedule, mu, s, mu_h, s_h

        class C:
            n_species = 2

        self.cfg = C()

    def _eps(self, z, a, sg, mu, s):
        x0 = mu + a * s**2 / (a**2 * s**2 + sg**2) * (z - a * mu)
        return (z - a * x0) / sg

    def forward(self, z_x, z_h, t_frac, spectrum, node_mask):
        t = torch.round(t_frac * self.sch.cfg.T).long()
        a, sg = self.sch(t)
        a, sg = a[:, None, None], sg[:, None, None]
        return self._eps(z_x, a, sg, self.mu, self.s), self._eps(z_h, a, sg, self.mu_h, self.s_h)


def test_eta_one_reproduces_the_ancestral_sampler():
    """DDIM with eta = 1 is algebraically the ancestral step and draws noise in the same order."""
    m = _random_model()
    spec, n = _spectra(3), torch.tensor([5, 7, 6])
    for steps in (None, 20):
        a = sample(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(3), n_steps=steps)
        d = sample_ddim(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(3), n_steps=steps, eta=1.0)
        assert torch.allclose(a.x, d.x, atol=2e-4), (steps, (a.x - d.x).abs().max())
        assert torch.equal(a.species, d.species)


def test_deterministic_for_eta_zero_and_seeded_otherwise():
    m = _random_model()
    spec, n = _spectra(2), torch.tensor([6, 6])
    noise = (torch.randn(2, 6, 3), torch.randn(2, 6, 2))
    a = sample_ddim(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(0), n_steps=10, noise=noise)
    b = sample_ddim(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(99), n_steps=10, noise=noise)
    assert torch.equal(a.x, b.x)  # eta = 0: the generator is not used after the initial noise
    c = sample_ddim(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(0), n_steps=10, noise=noise, eta=0.5)
    d = sample_ddim(m.denoiser, spec, n, m.schedule, torch.Generator().manual_seed(1), n_steps=10, noise=noise, eta=0.5)
    assert not torch.allclose(c.x, d.x)
    assert torch.all(a.x[:, 0] == 0) and torch.all(a.species[:, 0] == O)
    assert torch.all(torch.linalg.norm(a.x, dim=-1) <= 6.0 + 1e-4)  # the radial clip


def test_rotating_the_noise_rotates_the_output():
    m = _random_model()
    spec, n = _spectra(3), torch.tensor([5, 8, 8])
    g = torch.Generator().manual_seed(5)
    zx, zh = torch.randn(3, 8, 3, generator=g), torch.randn(3, 8, 2, generator=g)
    a = sample_ddim(m.denoiser, spec, n, m.schedule, n_steps=25, noise=(zx, zh))
    moved = (a.x - a.x[:, :1]).abs().max()
    assert moved > 0.5  # the outputs are not trivial
    for reflect in (False, True):  # O(3): rotations and rotation-reflections
        r = torch.as_tensor(random_orthogonal(1, reflect), dtype=torch.float32)
        b = sample_ddim(m.denoiser, spec, n, m.schedule, n_steps=25, noise=(zx @ r.T, zh))
        assert torch.allclose(a.x @ r.T, b.x, atol=2e-3), (reflect, (a.x @ r.T - b.x).abs().max())
        assert torch.equal(a.species, b.species)
    # permuting the (non-excited) atoms permutes the output
    p = torch.tensor([0, 3, 1, 2, 4])
    c = sample_ddim(m.denoiser, spec[:1], n[:1], m.schedule, n_steps=25, noise=(zx[:1, :5], zh[:1, :5]))
    d = sample_ddim(m.denoiser, spec[:1], n[:1], m.schedule, n_steps=25, noise=(zx[:1, :5][:, p], zh[:1, :5][:, p]))
    assert torch.allclose(c.x[:, p], d.x, atol=2e-3)


def test_oracle_marginals_match_the_ancestral_sampler():
    """With the exact eps of a Gaussian data distribution, all T steps: DDIM (eta 0 and 0.5) and
    the ancestral sampler recover the data mean and spread and agree with each other."""
    sch = Schedule(DiffusionConfig())
    oracle = GaussianOracle(sch)
    spec, n = torch.zeros(400, 200), torch.full((400,), 5)
    res = {}
    for name, fn, kw in (("anc", sample, {}), ("ddim", sample_ddim, {}), ("ddim_eta", sample_ddim, {"eta": 0.5})):
        out = fn(oracle, spec, n, sch, torch.Generator().manual_seed(0), n_steps=None, **kw)
        x = out.x[:, 1:].reshape(-1).numpy()
        res[name] = (x.mean(), x.std())
    for name, (mean, std) in res.items():
        assert abs(mean - 0.7) < 0.03, (name, mean)
        assert abs(std - 0.5) < 0.03, (name, std)
    assert abs(res["anc"][0] - res["ddim"][0]) < 0.03 and abs(res["anc"][1] - res["ddim"][1]) < 0.03


def test_few_steps_ddim_is_closer_to_the_data_than_strided_ancestral():
    """At 20 steps both samplers under-disperse (a discretisation error); DDIM less so."""
    sch = Schedule(DiffusionConfig())
    oracle = GaussianOracle(sch)
    spec, n = torch.zeros(400, 200), torch.full((400,), 5)
    std = {}
    for name, fn in (("anc", sample), ("ddim", sample_ddim)):
        x = fn(oracle, spec, n, sch, torch.Generator().manual_seed(0), n_steps=20).x[:, 1:].reshape(-1).numpy()
        assert abs(x.mean() - 0.7) < 0.03
        std[name] = x.std()
    assert abs(std["ddim"] - 0.5) < 0.1 * 0.5, std
    assert abs(std["ddim"] - 0.5) < abs(std["anc"] - 0.5), std


def test_generate_sampler_option(tmp_path):
    m = _random_model()
    spec = _spectra(2).numpy()
    a = generate(m, spec, [5, 6], n_samples=2, seed=0, n_steps=8)
    b = generate(m, spec, [5, 6], n_samples=2, seed=0, n_steps=8, sampler="ancestral")
    assert all(np.array_equal(x.coords, y.coords) for u, v in zip(a, b) for x, y in zip(u, v))  # default unchanged
    c = generate(m, spec, [5, 6], n_samples=2, seed=0, n_steps=8, sampler="ddim")
    d = generate(m, spec, [5, 6], n_samples=2, seed=0, n_steps=8, sampler="ddim", eta=1.0)
    assert [e.n_atoms for e in c[1]] == [6, 6]
    assert all(np.allclose(x.coords, y.coords, atol=5e-3) for u, v in zip(a, d) for x, y in zip(u, v))
    assert not np.allclose(c[0][0].coords, a[0][0].coords)
    assert set(np.unique(np.concatenate([e.species for e in c[0]]))) <= {SI, O}
    with pytest.raises(ValueError, match="sampler"):
        generate(m, spec, [5, 6], sampler="dpm")
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(m.denoiser, torch.as_tensor(spec), torch.tensor([5, 6]), m.schedule, eta=-1.0)


def test_bench_choose_default():
    from s2s.studies.sampling_steps import choose_default as choose

    pt = lambda r, acc, t: {"rmsd_shell1": r, "species_accuracy": acc, "s_per_structure": t}  # noqa: E731
    curve = {
        "ancestral": {1000: pt(0.10, 0.95, 1.0), 100: pt(0.20, 0.90, 0.1), 20: pt(0.5, 0.5, 0.02)},
        "ddim": {1000: pt(0.10, 0.95, 1.0), 100: pt(0.105, 0.94, 0.1), 20: pt(0.2, 0.9, 0.02)},
    }
    assert choose(curve) == ("ddim", 100)
    assert choose(curve, rmsd_tol=1.5, acc_tol=0.1, min_steps=1) == ("ddim", 20)
    assert choose(curve, rmsd_tol=1.5, acc_tol=0.1) == ("ancestral", 100)  # min_steps 50; equal cost: by name
    split = {"ddim": {100: pt(0.10, 0.80, 0.1), 20: pt(0.30, 0.95, 0.02)}}
    assert choose(split) == ("ddim", 100)


def test_bench_steps_writes_results(tmp_path, alpha_quartz):
    import json

    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import environments_from_structure
    from s2s.model.train import save_inference_model
    from s2s.studies.results import update_results

    env = environments_from_structure(alpha_quartz, structure_id="q").environments[0]
    recs = [
        SiteRecord(
            _spectra(1, seed=k)[0].numpy().astype(float),
            env,
            f"q{k}",
            env.meta["site_index"],
            formula="SiO2",
            source="test",
            simulator="toy",
            split="test",
        )
        for k in range(2)
    ]
    data = tmp_path / "d.h5"
    Dataset.from_records(recs, {}).save(data)
    m = _random_model()
    model = tmp_path / "m.pt"
    save_inference_model(m, m.cfg, 8, model)
    res = tmp_path / "results.json"
    update_results("predict", {"calibration_spearman": 0.5}, res)
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_steps.py"
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            "--model",
            str(model),
            "--data",
            str(data),
            "--steps",
            "4",
            "2",
            "--n-samples",
            "1",
            "--write-results",
            "--results",
            str(res),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    pred = json.loads(res.read_text())["predict"]
    assert pred["calibration_spearman"] == 0.5  # other predict keys kept
    assert set(pred["steps_curve"]) == {"4", "2"}
    assert {"rmsd_shell1", "species_accuracy", "s_per_structure"} <= set(pred["steps_curve"]["4"])
    assert set(pred["steps_curve_by_sampler"]) == {"ancestral", "ddim"}
    assert pred["default_steps"] in (4, 2) and pred["default_sampler"] in ("ancestral", "ddim")


def test_noise_scale_cools_the_ancestral_sampler():
    """noise_scale < 1 (low temperature) keeps the Gaussian oracle's mean and narrows its spread;
    1 is the paper's sampler bit for bit; generate refuses it for DDIM and a negative value anywhere."""
    sch = Schedule(DiffusionConfig())
    oracle = GaussianOracle(sch)
    spec, n = torch.zeros(400, 200), torch.full((400,), 5)
    std = {}
    for ns in (1.0, 0.5):
        x = sample(oracle, spec, n, sch, torch.Generator().manual_seed(0), n_steps=200, noise_scale=ns).x[:, 1:]
        x = x.reshape(-1).numpy()
        assert abs(x.mean() - 0.7) < 0.03, (ns, x.mean())
        std[ns] = x.std()
    assert abs(std[1.0] - 0.5) < 0.05, std
    assert std[0.5] < std[1.0] - 0.1, std
    base = sample(oracle, spec[:4], n[:4], sch, torch.Generator().manual_seed(1), n_steps=50)
    same = sample(oracle, spec[:4], n[:4], sch, torch.Generator().manual_seed(1), n_steps=50, noise_scale=1.0)
    assert torch.equal(base.x, same.x)
    with pytest.raises(ValueError, match="noise_scale"):
        sample(oracle, spec[:4], n[:4], sch, n_steps=5, noise_scale=-0.1)
    m = _random_model()
    with pytest.raises(ValueError, match="noise_scale"):
        generate(m, _spectra(2).numpy(), [5, 6], sampler="ddim", noise_scale=0.5)
    cool = generate(m, _spectra(2).numpy(), [5, 6], seed=0, n_steps=8, noise_scale=0.5)
    assert [e.n_atoms for g in cool for e in g] == [5, 6]
