"""Training: conditioning is learned, checkpoints resume exactly, sampling works end to end."""

import numpy as np
import pytest
import torch

from s2s.config import ModelConfig, S2SConfig, TrainConfig, tiny_preset
from s2s.environment import SI, Environment, O
from s2s.model.sample import generate
from s2s.model.train import CHECKPOINT, FINAL, LOSS_CSV, load_model, train

# One thread: deterministic and fastest for these tiny models on a shared 2-core machine.
torch.set_num_threads(1)

GRID = -1.0 + 0.1 * np.arange(200)


def gaussian_spectrum(center):
    s = np.exp(-0.5 * ((GRID - center) / 1.0) ** 2)
    return s / np.trapezoid(s, GRID)


def env_a():
    """O bridging two Si at 1.6 Å, Si-O-Si 150 deg (a silica-like motif)."""
    th = np.deg2rad(150.0)
    return Environment([O, SI, SI], [[0, 0, 0], [1.6, 0, 0], [1.6 * np.cos(th), 1.6 * np.sin(th), 0]], [0, 1, 1])


def env_b():
    """O with two O at 1.45 Å, 90 deg (a made-up O-rich motif, distinct in species and shape)."""
    return Environment([O, O, O], [[0, 0, 0], [1.45, 0, 0], [0, 1.45, 0]], [0, 1, 1])


@pytest.fixture(scope="module")
def toy_model():
    envs = [env_a(), env_b()] * 32
    spectra = np.array([gaussian_spectrum(3.0), gaussian_spectrum(12.0)] * 32)
    cfg = S2SConfig(
        model=ModelConfig(n_layers=2, hidden_dim=64, message_dim=32),
        train=TrainConfig(lr=2e-3, batch_size=16, epochs=10_000, ema_beta=0.99, log_every=50),
    )
    return train(cfg, envs, spectra, None, max_steps=1000, progress=False)


def test_generation_follows_the_spectrum(toy_model):
    """Fails if the conditioning is ignored: each spectrum must give its own environment."""
    spectra = np.array([gaussian_spectrum(3.0), gaussian_spectrum(12.0)])
    samples = generate(toy_model.model, spectra, n_atoms=[3, 3], n_samples=8, seed=1)
    frac_a = [s.oxygen_fraction() for s in samples[0]]
    frac_b = [s.oxygen_fraction() for s in samples[1]]
    # species: A is 1/3 oxygen, B all oxygen
    assert sum(np.isclose(f, 1 / 3) for f in frac_a) >= 7, frac_a
    assert sum(np.isclose(f, 1.0) for f in frac_b) >= 7, frac_b

    # geometry: A's bonds (1.6 Å) are longer than B's (1.45 Å); A's angle is wide
    def bond(e):
        return np.linalg.norm(e.coords[1:], axis=1).mean()

    assert np.median([bond(e) for e in samples[0]]) > np.median([bond(e) for e in samples[1]]) + 0.05
    for e in samples[0] + samples[1]:
        assert e.species[0] == O and np.allclose(e.coords[0], 0.0)


def test_loss_decreases(toy_model):
    h = toy_model.history
    assert h[-1]["loss"] < 0.7 * h[0]["loss"]


def test_atom_count_head_learns_counts():
    envs = [env_a(), Environment([O, SI], [[0, 0, 0], [1.6, 0, 0]], [0, 1])] * 16
    spectra = np.array([gaussian_spectrum(3.0), gaussian_spectrum(12.0)] * 16)
    cfg = tiny_preset()
    res = train(cfg, envs, spectra, None, max_steps=300, progress=False)
    pred = res.model.natoms.predict(torch.tensor(spectra[:2], dtype=torch.float32))
    assert pred.tolist() == [3, 2]
    # and generation without a target count uses it
    out = generate(res.model, spectra[:2], n_atoms=None, natoms_mode="argmax", n_samples=2, seed=0, n_steps=20)
    assert [e.n_atoms for e in out[0]] == [3, 3] and [e.n_atoms for e in out[1]] == [2, 2]


def _toy_data():
    envs = [env_a(), env_b()] * 5
    spectra = np.array([gaussian_spectrum(3.0), gaussian_spectrum(12.0)] * 5)
    return envs, spectra


def test_resume_after_interrupt_is_exact(tmp_path):
    torch.set_num_threads(1)
    envs, spectra = _toy_data()
    cfg = S2SConfig(
        model=ModelConfig(n_layers=2, hidden_dim=16, message_dim=8),
        train=TrainConfig(lr=1e-3, batch_size=4, epochs=100, checkpoint_every=7, log_every=5, seed=3),
    )
    straight = train(cfg, envs, spectra, tmp_path / "a", max_steps=24, progress=False)
    part = train(cfg, envs, spectra, tmp_path / "b", max_steps=24, progress=False, stop_after=11)
    assert part.step == 11 and (tmp_path / "b" / CHECKPOINT).exists() and not (tmp_path / "b" / FINAL).exists()
    resumed = train(cfg, envs, spectra, tmp_path / "b", max_steps=24, progress=False)
    assert resumed.step == 24
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    # the saved inference model reloads to the same EMA weights
    m = load_model(tmp_path / "b" / FINAL)
    for (k, a), (_, b) in zip(resumed.model.state_dict().items(), m.state_dict().items()):
        assert torch.equal(a, b), k
    assert (tmp_path / "b" / LOSS_CSV).read_text().startswith("step,epoch,loss")
    # a different configuration refuses to resume from that checkpoint
    other = S2SConfig(model=cfg.model, train=TrainConfig(lr=5e-4, batch_size=4, epochs=100))
    (tmp_path / "b" / FINAL).unlink()
    with pytest.raises(ValueError, match="different configuration"):
        train(other, envs, spectra, tmp_path / "b", max_steps=30, progress=False)


def test_bad_training_input():
    envs, spectra = _toy_data()
    with pytest.raises(ValueError, match="spectra must have shape"):
        train(tiny_preset(), envs, spectra[:, :100], None, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train(tiny_preset(), [], spectra[:0], None, max_steps=1, progress=False)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_model("nowhere.pt")


def test_sum_seconds_adds_resumed_calls():
    from s2s.model.train import sum_seconds

    assert sum_seconds([{"seconds": 1.0}, {"seconds": 2.5}, {"seconds": 0.5}, {"seconds": 1.5}]) == 4.0
    assert sum_seconds([]) == 0.0


def test_continue_from_another_run_on_a_new_training_set(tmp_path):
    """init_from: weights, optimiser state, step count and history carry over to a new training set."""
    import json

    from s2s.plots import plot_loss_curve, read_loss_csv

    torch.set_num_threads(1)
    envs, spectra = _toy_data()
    cfg = S2SConfig(
        model=ModelConfig(n_layers=2, hidden_dim=16, message_dim=8),
        train=TrainConfig(lr=1e-3, batch_size=4, epochs=100, checkpoint_every=7, log_every=5, seed=3),
    )
    first = train(cfg, envs, spectra, tmp_path / "a", max_steps=10, progress=False, info={"dataset": "A"})
    # a continuation with no further steps is the first run's EMA model
    same = train(
        cfg, envs[:5], spectra[:5], tmp_path / "b0", max_steps=10, progress=False, init_from=tmp_path / "a" / CHECKPOINT
    )
    for (k, a), (_, b) in zip(first.model.state_dict().items(), same.model.state_dict().items()):
        assert torch.equal(a, b), k
    more = train(
        cfg, envs[:5], spectra[:5], tmp_path / "b", max_steps=25, progress=False, init_from=tmp_path / "a" / CHECKPOINT
    )
    assert more.step == 25
    assert not all(
        torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), more.model.state_dict().values())
    )
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["continued_from"]["step"] == 10 and run["continued_from"]["dataset"] == "A"
    assert run["n_train"] == 5 and run["steps"] == 25
    h = read_loss_csv(tmp_path / "b" / LOSS_CSV)
    assert h["step"][0] == 5 and h["step"][-1] == 25 and set(h["stage"]) == {0.0, 1.0}
    plot_loss_curve(h)
    # a continuation of the continuation with a lower learning rate keeps the whole chain
    slow = S2SConfig(model=cfg.model, train=TrainConfig(lr=1e-4, batch_size=4, epochs=100, log_every=5, seed=3))
    third = train(
        slow, envs[:6], spectra[:6], tmp_path / "d", max_steps=30, progress=False, init_from=tmp_path / "b" / CHECKPOINT
    )
    chain = json.loads((tmp_path / "d" / "run.json").read_text())["continued_from"]
    assert chain["step"] == 25 and chain["lr"] == 1e-3 and chain["continued_from"]["step"] == 10
    state = torch.load(tmp_path / "d" / CHECKPOINT, weights_only=False)
    assert state["optimizer"]["param_groups"][0]["lr"] == 1e-4 and third.step == 30
    assert set(read_loss_csv(tmp_path / "d" / LOSS_CSV)["stage"]) == {0.0, 1.0, 2.0}
    # interrupted continuation resumes from its own checkpoint (init_from then ignored)
    part = train(
        cfg,
        envs[:5],
        spectra[:5],
        tmp_path / "c",
        max_steps=25,
        progress=False,
        stop_after=8,
        init_from=tmp_path / "a" / CHECKPOINT,
    )
    assert part.step == 18
    resumed = train(
        cfg, envs[:5], spectra[:5], tmp_path / "c", max_steps=25, progress=False, init_from=tmp_path / "a" / CHECKPOINT
    )
    for (k, a), (_, b) in zip(more.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert json.loads((tmp_path / "c" / "run.json").read_text())["continued_from"]["step"] == 10
    # refusals: another model configuration, the inference model instead of a checkpoint, a missing file
    other = S2SConfig(model=ModelConfig(n_layers=2, hidden_dim=8, message_dim=8), train=cfg.train)
    with pytest.raises(ValueError, match="model configuration"):
        train(other, envs, spectra, None, max_steps=12, progress=False, init_from=tmp_path / "a" / CHECKPOINT)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        train(cfg, envs, spectra, None, max_steps=12, progress=False, init_from=tmp_path / "a" / FINAL)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        train(cfg, envs, spectra, None, max_steps=12, progress=False, init_from=tmp_path / "nope.pt")


def test_a_continuation_counts_its_epochs_from_its_own_first_step(tmp_path):
    """A continuation on a small set (one step per epoch) trains its epochs, also when interrupted and resumed;
    counting epochs from step 0 made it end at once, silently, once the earlier run was past them."""
    torch.set_num_threads(1)
    envs, spectra = _toy_data()
    cfg = S2SConfig(
        model=ModelConfig(n_layers=2, hidden_dim=16, message_dim=8),
        train=TrainConfig(lr=1e-3, batch_size=4, epochs=100, checkpoint_every=5, log_every=5, seed=3),
    )
    train(cfg, envs, spectra, tmp_path / "a", max_steps=12, progress=False)
    few = S2SConfig(model=cfg.model, train=TrainConfig(lr=1e-3, batch_size=4, epochs=3, checkpoint_every=1, seed=3))
    init = tmp_path / "a" / CHECKPOINT
    done = train(few, envs[:4], spectra[:4], tmp_path / "b", progress=False, init_from=init)  # 1 step per epoch
    assert done.step == 12 + 3
    part = train(few, envs[:4], spectra[:4], tmp_path / "c", progress=False, init_from=init, stop_after=1)
    assert part.step == 13
    resumed = train(few, envs[:4], spectra[:4], tmp_path / "c", progress=False, init_from=init)
    assert resumed.step == 15
    for (k, a), (_, b) in zip(done.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
