"""The spectrum's fidelity as a model input (``ModelConfig.fidelity_input``, issue 29 item 4 (c)).

Off (the default) the network is the old one, weights and outputs; on, one more node-input channel carries the
flag (1 first principles, 0 xTB) on the excited atom; a continuation of a model without it starts from a zero
column (exactly the old network for either flag); training batches carry each record's flag; ``generate`` and
the generation cache take the flag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_equivariant, random_batch

from s2s.config import DiffusionConfig, ModelConfig, S2SConfig, TrainConfig
from s2s.dataset import SiteRecord
from s2s.environment import Environment
from s2s.model import S2SModel
from s2s.model.cache import cache_key
from s2s.model.egnn import EGNNDenoiser
from s2s.model.sample import generate
from s2s.model.train import CHECKPOINT, EMBED_WEIGHT, load_model, train
from s2s.site_record import fidelity_flag

SMALL = dict(n_layers=2, hidden_dim=16, message_dim=8)
V6 = Path(__file__).resolve().parents[1] / "models" / "s2s_open_v6" / "model.pt"
TOL = 1e-9  # float64


def _batch(seed: int = 0):
    """Three graphs of 7, 5 and 3 atoms (float64), noisy species and spectra, and times t (3,)."""
    b, h = random_batch(3, 7, seed)
    return b, h, torch.tensor([0.3, 0.7, 0.05], dtype=torch.float64)


def _net(seed: int = 0, **kw) -> EGNNDenoiser:
    torch.manual_seed(seed)
    return EGNNDenoiser(ModelConfig(**SMALL, **kw)).double().eval()


# (a) off: the old network -----------------------------------------------------------------------------------
def test_off_is_the_old_network_and_old_checkpoints_load_unchanged():
    old_fields = {k: v for k, v in S2SConfig(model=ModelConfig(**SMALL)).to_dict()["model"].items()}
    old_fields.pop("fidelity_input")  # a config saved before the field existed
    cfg = S2SConfig.from_dict({"model": old_fields})
    assert cfg.model.fidelity_input is False
    torch.manual_seed(0)
    old = EGNNDenoiser(cfg.model).double().eval()
    off = _net(fidelity_input=False)
    on = _net(fidelity_input=True)
    assert {k: v.shape for k, v in old.state_dict().items()} == {k: v.shape for k, v in off.state_dict().items()}
    assert old.embed.in_features == 2 + 2 + 200 and on.embed.in_features == old.embed.in_features + 1
    for k, v in old.state_dict().items():
        assert torch.equal(v, off.state_dict()[k]), k
    b, h, t = _batch()
    for got, want in zip(off(b.x, h, t, b.spectrum, b.node_mask), old(b.x, h, t, b.spectrum, b.node_mask)):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="no fidelity input"):  # never silently ignored
        off(b.x, h, t, b.spectrum, b.node_mask, fidelity=torch.ones(3, dtype=torch.float64))
    # the shipped model (saved before the field) loads strictly, as a model without the channel
    shipped = load_model(V6)
    assert shipped.cfg.model.fidelity_input is False
    assert shipped.denoiser.embed.in_features == 2 + 2 + 200 + 2  # + self-conditioning species
    with pytest.raises(ValueError, match="no fidelity input"):
        generate(shipped, np.ones((1, 200), np.float32) / 20, [5], n_steps=1, fidelity=1.0)


# (b) a continuation adds the channel as a zero column ---------------------------------------------------------
def _toy_records(n_each: int = 4) -> list[SiteRecord]:
    """``n_each`` xTB and ``n_each`` reference records (alternating), record i's spectrum marked by bin 0 = i."""
    rng = np.random.default_rng(1)
    recs = []
    for i in range(2 * n_each):
        k = 4 + i % 3
        x = rng.normal(scale=1.6, size=(k, 3))
        x[0] = 0.0
        sp = np.r_[1, rng.integers(0, 2, size=k - 1)]
        spec = np.abs(rng.normal(size=200)) + 0.1
        spec[0] = float(i)
        sim = "xtb-gfn1" if i % 2 == 0 else "gpaw-lcao"
        recs.append(SiteRecord(spec, Environment(sp, x, np.r_[0, np.ones(k - 1, int)]), f"s{i}", 0, simulator=sim))
    return recs


def _cfg(fidelity_input: bool) -> S2SConfig:
    return S2SConfig(
        model=ModelConfig(**SMALL, spectrum_encoder="film", self_condition=True, fidelity_input=fidelity_input),
        diffusion=DiffusionConfig(parameterization="x0", loss_weight="clamp_snr"),
        train=TrainConfig(lr=1e-3, batch_size=3, epochs=100, checkpoint_every=100, log_every=1, seed=2),
    )


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A run without the fidelity input (4 steps) and its checkpoint; the records it trained on."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("src")
    recs = _toy_records()
    envs, spectra = [r.environment for r in recs], np.stack([r.spectrum for r in recs])
    res = train(_cfg(False), envs, spectra, root, max_steps=4, progress=False)
    return res, root / CHECKPOINT, recs


def _outputs(denoiser, flag=None):
    """The (float32) denoiser's outputs on :func:`_batch`, with fidelity flag ``flag`` on every graph (None: not
    passed)."""
    b, h, t = _batch()
    kw = {} if flag is None else {"fidelity": torch.full((3,), float(flag))}
    with torch.no_grad():
        return denoiser(b.x.float(), h.float(), t.float(), b.spectrum.float(), b.node_mask.float(), **kw)


def test_init_from_pads_a_zero_column_and_starts_as_the_source(source_run, tmp_path):
    src, ckpt, recs = source_run
    envs, spectra = [r.environment for r in recs], np.stack([r.spectrum for r in recs])
    flags = [fidelity_flag(r.fidelity) for r in recs]
    # max_steps = the source's step: the continuation is set up, saved, and not trained
    new = train(_cfg(True), envs, spectra, tmp_path, max_steps=src.step, progress=False, init_from=ckpt, fidelity=flags)
    col = new.model.denoiser.embed.weight[:, -1]
    assert new.model.denoiser.embed.in_features == src.model.denoiser.embed.in_features + 1
    assert torch.equal(col, torch.zeros_like(col))
    want = _outputs(src.model.denoiser)
    for flag in (0.0, 1.0):
        for got, ref in zip(_outputs(new.model.denoiser, flag), want):
            # bit-identical here; the tolerance only allows a BLAS to sum a (K+1)-long row in another order
            assert torch.allclose(got, ref, atol=1e-6, rtol=0), f"flag {flag}"
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)  # raw weights, EMA and AdamW moments padded
    assert torch.equal(state["model"][EMBED_WEIGHT][:, -1], torch.zeros_like(col))
    assert torch.equal(state["ema"]["module." + EMBED_WEIGHT][:, -1], torch.zeros_like(col))
    idx = [name for name, _ in new.model.named_parameters()].index(EMBED_WEIGHT)
    moments = state["optimizer"]["state"][idx]
    for k in ("exp_avg", "exp_avg_sq"):
        assert moments[k].shape == new.model.denoiser.embed.weight.shape
        assert torch.equal(moments[k][:, -1], torch.zeros_like(col)) and moments[k][:, :-1].abs().max() > 0
    assert state["continued_from"]["fidelity_input_added"] is True
    # training from there learns the column; every other mismatch is still refused
    more = train(
        _cfg(True), envs, spectra, None, max_steps=src.step + 3, progress=False, init_from=ckpt, fidelity=flags
    )
    assert more.model.denoiser.embed.weight[:, -1].abs().max() > 0
    other = S2SConfig(model=ModelConfig(n_layers=2, hidden_dim=8, message_dim=8, fidelity_input=True))
    with pytest.raises(ValueError, match="model configuration"):
        train(other, envs, spectra, None, max_steps=9, progress=False, init_from=ckpt, fidelity=flags)
    with pytest.raises(ValueError, match="model configuration"):  # the channel is never dropped again
        train(_cfg(False), envs, spectra, None, max_steps=9, progress=False, init_from=tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="needs the fidelity flag"):
        train(_cfg(True), envs, spectra, None, max_steps=9, progress=False, init_from=ckpt)


# (c) the flag changes the output, equivariantly ---------------------------------------------------------------
def test_the_flag_reaches_the_output_and_keeps_equivariance():
    net = _net(fidelity_input=True, spectrum_encoder="film", self_condition=True)
    with torch.no_grad():
        net.embed.weight[:, -1] = torch.linspace(-1.0, 1.0, net.embed.weight.shape[0], dtype=torch.float64)
    b, h, t = _batch()
    zero = net(b.x, h, t, b.spectrum, b.node_mask, fidelity=torch.zeros(3, dtype=torch.float64))
    none = net(b.x, h, t, b.spectrum, b.node_mask)
    one = net(b.x, h, t, b.spectrum, b.node_mask, fidelity=torch.ones(3, dtype=torch.float64))
    assert all(torch.equal(a, c) for a, c in zip(zero, none))  # None = xTB
    assert (zero[0] - one[0]).abs().max() > 1e-6 and (zero[1] - one[1]).abs().max() > 1e-6
    # per graph: graph 1 flagged alone changes graph 1 only
    mixed = net(b.x, h, t, b.spectrum, b.node_mask, fidelity=torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.equal(mixed[0][0], zero[0][0]) and torch.equal(mixed[0][1], one[0][1])
    for flags in ([1.0, 1.0, 1.0], [1.0, 0.0, 1.0]):
        f = torch.tensor(flags, dtype=torch.float64)
        assert_equivariant(
            lambda x, hh: net(x, hh, t, b.spectrum, b.node_mask, fidelity=f), b.x, h, 7, seed=3, atol=TOL
        )


# (d) training batches carry each record's flag ----------------------------------------------------------------
def test_training_batches_carry_each_records_flag(source_run, monkeypatch):
    _, _, recs = source_run
    seen = []
    loss = S2SModel.loss

    def spy(self, batch, generator=None):
        seen.append((batch.spectrum[:, 0].round().long().tolist(), batch.fidelity))
        return loss(self, batch, generator)

    monkeypatch.setattr(S2SModel, "loss", spy)
    envs, spectra = [r.environment for r in recs], np.stack([r.spectrum for r in recs])
    flags = [fidelity_flag(r.fidelity) for r in recs]
    assert flags == [0.0, 1.0] * 4
    train(_cfg(True), envs, spectra, None, max_steps=6, progress=False, fidelity=flags)
    assert len(seen) == 6
    for idx, fid in seen:
        assert fid is not None and fid.shape == (len(idx),)
        assert fid.tolist() == [1.0 if recs[i].fidelity == "reference" else 0.0 for i in idx]
    assert {v for _, f in seen for v in f.tolist()} == {0.0, 1.0}
    assert any(idx != sorted(idx) for idx, _ in seen)  # shuffled: a flag by position would not match
    seen.clear()
    train(_cfg(False), envs, spectra, None, max_steps=2, progress=False)  # without the input: no flags, as before
    assert [f for _, f in seen] == [None, None]


# (e) generate() takes the flag --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flagged_model():
    torch.manual_seed(0)
    diffusion = DiffusionConfig(parameterization="x0")  # the samples are the network's x_0, not mostly clipped noise
    m = S2SModel(S2SConfig(model=ModelConfig(**SMALL, fidelity_input=True), diffusion=diffusion), n_max=16).eval()
    with torch.no_grad():
        m.denoiser.embed.weight[:, -1] = 3.0 * torch.randn(m.denoiser.embed.weight.shape[0])
        for layer in m.denoiser.layers:  # coordinate updates of O(1) Å (they start at ~1e-3)
            torch.nn.init.xavier_uniform_(layer.coord[-1].weight, gain=0.3)
    return m


@pytest.mark.parametrize("buckets", [False, True])
def test_generate_is_seeded_and_reads_the_flag(flagged_model, buckets):
    torch.set_num_threads(1)
    spec = np.abs(np.random.default_rng(0).normal(size=(2, 200))).astype(np.float32)
    kw = dict(n_samples=2, seed=4, sampler="ddim", n_steps=3, buckets=buckets)

    def coords(**more) -> list[np.ndarray]:
        """Per spectrum, the coordinates (Å) of its samples stacked."""
        return [np.stack([e.coords for e in row]) for row in generate(flagged_model, spec, [6, 4], **kw, **more)]

    one = coords(fidelity=1.0)
    zero = coords(fidelity=0.0)
    for again, want in ((coords(fidelity=1.0), one), (coords(fidelity=np.array([1.0, 1.0])), one), (coords(), zero)):
        assert all(np.array_equal(a, w) for a, w in zip(again, want))  # seeded; None = 0 (xTB)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(one, zero))
    mixed = coords(fidelity=[1.0, 0.0])  # one flag per spectrum: the same noise, each spectrum its own flag
    assert np.array_equal(mixed[0], one[0]) and np.array_equal(mixed[1], zero[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generate(flagged_model, spec, [6, 4], **kw, fidelity=2.0)


# (f) the cache key covers the flag ----------------------------------------------------------------------------
def test_cache_key_differs_by_fidelity():
    spec = np.ones((2, 200), np.float32) / 20
    n = np.array([5, 6])
    kw = dict(n_samples=2, n_steps=3, seed=0, batch_size=64)
    none, zero, one = (cache_key("m", spec, n, **kw, fidelity=f) for f in (None, 0.0, 1.0))
    assert len({none, zero, one}) == 3
    # the key of an entry written before the option (computed by the code before it): unchanged
    assert none == cache_key("m", spec, n, **kw) == "e6b59b33f184232ebeb4e0144af7bd04df4e0d91fced5fa0619ff63f3b15cdcc"
    assert cache_key("m", spec, n, **kw, fidelity=[1.0, 1.0]) == one
    assert cache_key("m", spec, n, **kw, fidelity=[1.0, 0.0]) not in (zero, one)
