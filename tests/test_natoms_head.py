"""``fit_atom_count_head``: p(N | s) refitted alone (issue 29, round 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2s.model.natoms import AtomCountHead, fit_atom_count_head


def _toy(n_per: int = 40, seed: int = 0):
    """Spectra whose one peak position says the atom count: N = 3, 5 or 9 for a peak at bin 40, 100 or 160."""
    rng = np.random.default_rng(seed)
    x, n = [], []
    for count, centre in ((3, 40), (5, 100), (9, 160)):
        for _ in range(n_per):
            s = np.exp(-0.5 * ((np.arange(200) - centre - rng.normal(0, 2)) / 4.0) ** 2)
            x.append(s / s.sum() / 0.1)
            n.append(count)
    return np.array(x, dtype=np.float32), np.array(n)


def test_a_refitted_head_learns_counts_that_its_spectra_determine():
    x, n = _toy()
    head = fit_atom_count_head(x, n, n_max=12, epochs=60, seed=0)
    assert isinstance(head, AtomCountHead) and not head.training
    x_new, n_new = _toy(n_per=10, seed=1)
    pred = head.predict(torch.as_tensor(x_new)).numpy()
    assert np.mean(pred == n_new) == 1.0
    # a fresh head knows nothing: its mode is one count for every spectrum far more often than not
    fresh = AtomCountHead(200, n_max=12).predict(torch.as_tensor(x_new)).numpy()
    assert np.mean(fresh == n_new) < 0.7


def test_the_fit_is_deterministic_for_a_seed_and_starts_from_a_copy_of_init():
    x, n = _toy(n_per=10)
    a = fit_atom_count_head(x, n, n_max=12, epochs=5, seed=3)
    b = fit_atom_count_head(x, n, n_max=12, epochs=5, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    init = AtomCountHead(200, n_max=12)
    before = [p.detach().clone() for p in init.parameters()]
    fit_atom_count_head(x, n, n_max=12, init=init, epochs=5, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(init.parameters(), before, strict=True))  # init untouched


def test_records_of_weight_zero_do_not_teach_the_head():
    x, n = _toy(n_per=20)
    wrong = np.full_like(n, 7)  # every spectrum mislabelled 7, but with weight 0
    xx, nn = np.concatenate([x, x]), np.concatenate([n, wrong])
    w = np.concatenate([np.ones(len(n)), np.zeros(len(n))])
    head = fit_atom_count_head(xx, nn, n_max=12, weights=w, epochs=60, seed=0)
    assert np.mean(head.predict(torch.as_tensor(x)).numpy() == n) == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_atoms": np.full(120, 13)}, "1..n_max=12"),
        ({"n_atoms": np.full(119, 3)}, "M counts"),
        ({"weights": np.zeros(120)}, "weights"),
        ({"init": AtomCountHead(200, n_max=20)}, "n_max 20"),
    ],
)
def test_bad_inputs_say_what_was_expected(kwargs, match):
    x, n = _toy()
    args = {"spectra": x, "n_atoms": n, "n_max": 12, "epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_atom_count_head(**args)
