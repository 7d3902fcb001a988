"""What forward-model training (s2s.forward.train) promises beyond "it learns and resumes" (test_forward.py):
the reported validation MSE is the model's, the CPU budget is counted and kept, the learning-rate schedule,
the best weights on ties, the split's checks, batches of distinct sites.  Written against the survivors of
``scripts/mutation.py forward_training`` (docs/testing.md)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from s2s.environment import Environment, environments_from_structure
from s2s.forward import train as ftrain
from s2s.forward.model import ForwardConfig, validation_mask
from s2s.forward.train import train_forward
from s2s.spectrum import GRID

torch.set_num_threads(1)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


@pytest.fixture(scope="module")
def quartz_env():
    from tests.conftest import make_alpha_quartz

    return environments_from_structure(make_alpha_quartz(), structure_id="quartz").environments[0]


def _site(quartz_env, s: float):
    env = Environment(quartz_env.species, quartz_env.coords * s, quartz_env.shell)
    y = np.exp(-0.5 * ((GRID - 5 - 20 * (s - 1)) / 1.5) ** 2) + 0.05
    return env, y / _trapezoid(y, GRID)


def _ids(n_train: int, n_val: int, fraction: float = 0.1, seed: int = 1) -> list[str]:
    """Structure ids, one site each: ``n_train`` on the training side and ``n_val`` on the validation side
    of :func:`validation_mask`."""
    pool = [f"toy-{i}" for i in range(400)]
    val = validation_mask(pool, fraction, seed)
    train_ids = [p for p, v in zip(pool, val) if not v][:n_train]
    val_ids = [p for p, v in zip(pool, val) if v][:n_val]
    assert len(train_ids) == n_train and len(val_ids) == n_val
    return train_ids + val_ids


def _set(quartz_env, ids: list[str], seed: int = 0):
    rng = np.random.default_rng(seed)
    envs, ys = zip(*(_site(quartz_env, 1.0 + 0.03 * rng.normal()) for _ in ids))
    return list(envs), np.array(ys)


def _cfg(**kw) -> ForwardConfig:
    base = dict(kind="distance", hidden=16, n_rbf=8, batch_size=8, max_steps=8, eval_every=4, lr=3e-3, dropout=0.0)
    return ForwardConfig(**{**base, **kw})


def _val_mse(model, envs, ys, ids, cfg) -> float:
    val = validation_mask(ids, cfg.val_fraction, cfg.val_seed)
    pred = model.predict([e for e, v in zip(envs, val) if v])
    return float(((pred - ys[val]) ** 2).mean())


@pytest.mark.parametrize("n_val", [1, 3])
def test_the_reported_validation_error_is_the_kept_models_error_on_the_validation_sites(quartz_env, n_val):
    ids = _ids(10, n_val)
    envs, ys = _set(quartz_env, ids)
    cfg = _cfg()
    res = train_forward(cfg, envs, ys, ids, progress=False)
    assert res.best_val_mse == pytest.approx(_val_mse(res.model, envs, ys, ids, cfg), rel=1e-5)
    assert min(r["val_mse"] for r in res.history) == pytest.approx(res.best_val_mse, rel=1e-9)


def test_train_mse_is_in_the_units_of_the_validation_mse(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(max_steps=4), envs, ys, ids, progress=False)
    row = res.history[0]
    assert 0.1 < row["train_mse"] / row["val_mse"] < 3.0  # 0.52 here


def test_the_cpu_time_counted_is_positive_and_within_the_calls_own(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    t0 = time.process_time()
    res = train_forward(_cfg(), envs, ys, ids, progress=False)
    spent = time.process_time() - t0
    assert 0.0 < res.cpu_seconds <= spent
    cpu = [r["cpu_seconds"] for r in res.history]
    assert cpu == sorted(cpu) and cpu[-1] > 0.0


def test_a_cpu_budget_stops_training_and_the_last_step_is_logged(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(max_steps=100_000, eval_every=100_000), envs, ys, ids, cpu_seconds=0.3, progress=False)
    assert 0 < res.step < 100_000
    assert res.cpu_seconds >= 0.3
    assert res.history[-1]["step"] == res.step  # the budget stop is evaluated and logged


def test_no_step_gives_the_initial_network_as_the_best(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    cfg = _cfg()
    res = train_forward(cfg, envs, ys, ids, max_steps=0, progress=False)
    assert res.step == 0 and res.best_step == 0
    assert [r["step"] for r in res.history] == [0]
    assert res.best_val_mse == pytest.approx(_val_mse(res.model, envs, ys, ids, cfg), rel=1e-5)


def test_steps_and_evaluations_are_counted_from_zero(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(max_steps=10, eval_every=4), envs, ys, ids, progress=False)
    assert res.step == 10
    assert [r["step"] for r in res.history] == [4, 8, 10]


def test_learning_rate_follows_the_cosine_from_lr_to_its_floor(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    cfg = _cfg(max_steps=8, eval_every=4, lr=2e-3, lr_min_factor=0.1)
    res = train_forward(cfg, envs, ys, ids, progress=False)
    lr = {r["step"]: r["lr"] for r in res.history}
    assert lr[4] == pytest.approx(2e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8))))
    assert lr[8] == pytest.approx(2e-3 * 0.1)


def test_on_a_tie_the_first_best_weights_are_kept(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(lr=0.0, weight_decay=0.0, max_steps=12), envs, ys, ids, progress=False)
    assert len({r["val_mse"] for r in res.history}) == 1  # nothing learns at lr 0
    assert res.best_step == 4


def test_the_split_needs_both_sides_and_spectra_on_the_grid(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    with pytest.raises(ValueError, match="spectra must have shape"):
        train_forward(_cfg(), envs, ys[:, :-1], ids, progress=False)
    # one structure is on one side only (with two or more, validation_mask never leaves a side empty)
    only_train = _ids(1, 0) * 6
    with pytest.raises(ValueError, match="need training and validation"):
        train_forward(_cfg(), envs[:6], ys[:6], only_train, progress=False)
    only_val = _ids(0, 1) * 3
    with pytest.raises(ValueError, match="need training and validation"):
        train_forward(_cfg(), envs[:3], ys[:3], only_val, progress=False)
    one_train = _ids(1, 2)  # one training site is enough
    res = train_forward(_cfg(max_steps=2, eval_every=2), envs[:3], ys[:3], one_train, progress=False)
    assert res.step == 2


def test_each_batch_draws_distinct_sites(quartz_env, monkeypatch):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    seen: list[np.ndarray] = []
    take = ftrain._take

    def spy(cfg, inputs, idx):
        seen.append(np.asarray(idx))
        return take(cfg, inputs, idx)

    monkeypatch.setattr(ftrain, "_take", spy)
    train_forward(_cfg(batch_size=10, max_steps=3, eval_every=100), envs, ys, ids, progress=False)
    batches = [b for b in seen if b.size == 10 and b.max() < 10]  # the training batches (10 training sites)
    assert len(batches) == 3
    assert all(len(set(b.tolist())) == 10 for b in batches)


def test_soap_standardisation_never_divides_by_zero_or_less(quartz_env):
    ids = _ids(8, 2)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(kind="soap", max_steps=2, eval_every=2), envs, ys, ids, progress=False)
    std = res.model.net.std
    assert bool((std > 0).all())
    assert float(std.min()) >= 1e-6 * float(std.max())


def test_a_second_call_resumes_by_default(quartz_env, tmp_path):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    train_forward(_cfg(), envs, ys, ids, tmp_path, max_steps=4, progress=False)
    res = train_forward(_cfg(), envs, ys, ids, tmp_path, progress=False)
    assert [r["step"] for r in res.history] == [4, 8]  # went on from step 4


def test_a_budget_stop_on_an_evaluated_step_is_not_logged_twice(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    res = train_forward(_cfg(max_steps=100_000, eval_every=1), envs, ys, ids, cpu_seconds=0.2, progress=False)
    steps = [r["step"] for r in res.history]
    assert steps == list(range(1, res.step + 1))  # every step once, the last one included


def test_soap_inputs_are_standardised_on_the_training_sites_and_the_prior_is_their_mean(quartz_env):
    from s2s.descriptors.soap import soap_vectors

    ids = _ids(8, 2)
    envs, ys = _set(quartz_env, ids)
    cfg = _cfg(kind="soap")
    net = train_forward(cfg, envs, ys, ids, max_steps=0, progress=False).model.net
    train = ~validation_mask(ids, cfg.val_fraction, cfg.val_seed)
    x = torch.as_tensor(soap_vectors([e for e, t in zip(envs, train) if t], cfg.soap_settings()), dtype=torch.float32)
    z = (x - net.mean) / net.std
    varies = x.std(0) > 1e-3 * x.std(0).max()
    assert torch.allclose(z.mean(0), torch.zeros(x.shape[1]), atol=1e-4)
    assert torch.allclose(z.std(0)[varies], torch.ones(int(varies.sum())), atol=1e-3)
    # features that barely vary (here 76 of 952 below 1e-4 of the largest spread) are divided by their spread
    # plus a floor of 1e-6 of the largest one, not blown up
    floor = 1e-6 * float(x.std(0).max())
    assert torch.allclose(net.std, x.std(0) + floor + 1e-12, rtol=1e-4, atol=0.0)
    prior = torch.log(torch.as_tensor(ys[train].mean(0), dtype=torch.float32))
    assert torch.allclose(net.log_prior, prior, atol=1e-5)


def test_progress_bar_by_default_counting_the_steps(quartz_env, capsys):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    train_forward(_cfg(max_steps=6, eval_every=3), envs, ys, ids)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # the bar as it was left
    assert last.startswith("train-forward") and "6/6" in last


def test_an_output_folder_is_created_with_its_parents(quartz_env, tmp_path):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    train_forward(_cfg(max_steps=2, eval_every=2), envs, ys, ids, tmp_path / "a" / "b", progress=False)
    assert (tmp_path / "a" / "b" / "model.pt").exists()


def test_run_json_says_finished_only_at_the_end(quartz_env, tmp_path, monkeypatch):
    import json

    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    train_forward(_cfg(), envs, ys, ids, tmp_path / "done", progress=False)
    assert json.loads((tmp_path / "done" / "run.json").read_text())["finished"] is True

    step = ftrain._optimiser_step

    def interrupted(run, data):
        if run.step == 6:
            raise KeyboardInterrupt
        step(run, data)

    monkeypatch.setattr(ftrain, "_optimiser_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_forward(_cfg(), envs, ys, ids, tmp_path / "cut", progress=False)
    saved = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert saved["finished"] is False and saved["step"] == 4


def test_validation_cpu_counts_against_the_budget(quartz_env, monkeypatch):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    evaluate = ftrain._eval_mse

    def slow(*args, **kwargs):  # every validation costs at least 0.05 s of CPU
        t = time.process_time()
        while time.process_time() - t < 0.05:
            pass
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(ftrain, "_eval_mse", slow)
    res = train_forward(_cfg(max_steps=4, eval_every=1), envs, ys, ids, progress=False)
    assert res.cpu_seconds >= 4 * 0.05
    assert [r["cpu_seconds"] for r in res.history][-1] >= 4 * 0.05 - 1e-3


def test_init_from_starts_at_the_given_weights_with_this_sets_mean_prior(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    first = train_forward(_cfg(max_steps=8), envs, ys, ids, progress=False).model
    ys2 = np.roll(ys, 7, axis=1)  # another "fidelity": the same sites, other spectra
    cfg = _cfg(max_steps=8, seed=3)
    tuned = train_forward(cfg, envs, ys2, ids, max_steps=0, progress=False, init_from=first).model
    scratch = train_forward(cfg, envs, ys2, ids, max_steps=0, progress=False).model
    a, b, c = first.net.state_dict(), tuned.net.state_dict(), scratch.net.state_dict()
    for k in a:
        if k == "log_prior":  # the new training sites' mean spectrum, as a fresh run's
            assert torch.allclose(b[k], c[k]) and not torch.allclose(b[k], a[k])
        else:
            assert torch.equal(b[k], a[k]), k
    assert any(not torch.equal(b[k], c[k]) for k in b if k != "log_prior")
    assert tuned.meta["init_from"] == "a model in memory"


def test_init_from_another_architecture_is_refused_by_name(quartz_env):
    ids = _ids(10, 3)
    envs, ys = _set(quartz_env, ids)
    first = train_forward(_cfg(max_steps=2), envs, ys, ids, progress=False).model
    with pytest.raises(ValueError, match="hidden"):
        train_forward(_cfg(hidden=8), envs, ys, ids, max_steps=0, progress=False, init_from=first)
