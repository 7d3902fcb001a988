"""The fidelity map (s2s.forward.fidelity_map): ridge from one fidelity's spectra to the other's."""

from __future__ import annotations

import types

import numpy as np
import pytest

from s2s.forward.fidelity_map import (
    FidelityMap,
    cross_validate,
    fidelity_pairs,
    fit_fidelity_map,
    structure_folds,
    with_mapped_spectra,
)
from s2s.spectrum import GRID, N_GRID, normalize


def _peaks(rng, n, shift=0.0, width=1.0):
    """n unit-area spectra of two Gaussian peaks at random energies (eV), moved by ``shift`` eV."""
    c = rng.uniform(3.0, 12.0, size=(n, 2))
    a = rng.uniform(0.3, 1.0, size=(n, 2))
    y = sum(a[:, [k]] * np.exp(-0.5 * ((GRID[None] - c[:, [k]] - shift) / width) ** 2) for k in range(2))
    return normalize(y)


def _rms(a, b):
    return np.sqrt(((a - b) ** 2).mean(-1))


def test_a_learned_shift_and_broadening_is_undone_on_new_spectra():
    rng = np.random.default_rng(0)
    n = 400
    c = rng.uniform(3.0, 12.0, size=(n, 2))
    a = rng.uniform(0.3, 1.0, size=(n, 2))

    def spec(shift, width):
        return normalize(
            sum(a[:, [k]] * np.exp(-0.5 * ((GRID[None] - c[:, [k]] - shift) / width) ** 2) for k in range(2))
        )

    target, source = spec(0.0, 0.6), spec(1.5, 1.2)  # the same sites under two "methods"
    fmap = FidelityMap.fit(source[:300], target[:300], alpha=1e-3)
    out = fmap(source[300:])
    assert out.shape == (100, N_GRID) and np.all(out >= 0)
    np.testing.assert_allclose(
        np.trapezoid(out, GRID, axis=1) if hasattr(np, "trapezoid") else np.trapz(out, GRID, axis=1), 1.0, rtol=1e-9
    )
    before, after = np.median(_rms(source[300:], target[300:])), np.median(_rms(out, target[300:]))
    assert after < 0.3 * before, (before, after)
    # and it is better than predicting the mean target spectrum for every site
    assert after < 0.5 * np.median(_rms(target[:300].mean(0)[None], target[300:]))


def test_fit_is_the_ridge_minimum():
    rng = np.random.default_rng(1)
    x, y = _peaks(rng, 50), _peaks(rng, 50, shift=1.0)
    alpha = 0.05
    f = FidelityMap.fit(x, y, alpha)
    xc, yc = x - x.mean(0), y - y.mean(0)
    grad = xc.T @ (xc @ f.weight - yc) + alpha * f.weight  # d/dW of |Xc W - Yc|^2 / 2 + alpha |W|^2 / 2
    assert np.abs(grad).max() < 1e-10
    # the intercept: the mean source spectrum maps to the mean target spectrum
    np.testing.assert_allclose(f.predict(x.mean(0)), y.mean(0), atol=1e-12)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        FidelityMap.fit(x, y, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        FidelityMap.fit(x, y[:, :100])
    with pytest.raises(ValueError, match=r"\(\.\.\., 200\)"):
        f(np.ones(10))


def test_save_and_load_round_trip_and_damaged_files(tmp_path):
    rng = np.random.default_rng(2)
    f = FidelityMap.fit(_peaks(rng, 30), _peaks(rng, 30, shift=1.0), 0.1, meta={"calc_key": "abc"})
    p = f.save(tmp_path / "m" / "map.npz")
    assert not list(p.parent.glob("*.tmp"))
    g = FidelityMap.from_file(p)
    assert (g.alpha, g.source, g.target, g.meta["calc_key"], g.meta["n_pairs"]) == (0.1, "reference", "xtb", "abc", 30)
    x = _peaks(rng, 5)
    np.testing.assert_array_equal(g(x), f(x))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a fidelity map"):
        FidelityMap.from_file(bad)
    np.savez(tmp_path / "other.npz", weight=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not a fidelity map"):
        FidelityMap.from_file(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        FidelityMap.from_file(tmp_path / "missing.npz")


def test_structure_folds_keep_a_structure_in_one_fold():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + ["e"] * 2
    folds = structure_folds(groups, 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    for fold in folds:
        names = {groups[i] for i in fold}
        for g in names:
            assert all(groups[i] != g for other in folds if other is not fold for i in other)
    assert [len(f) for f in folds] == [7, 4, 3]  # a+e | b+d | c: most sites first, dealt round-robin
    assert len(structure_folds(["a", "b"], 5)) == 2
    with pytest.raises(ValueError, match="at least 2 structures"):
        structure_folds(["a", "a"])


def test_cross_validation_scores_out_of_fold_and_fit_picks_its_best_alpha():
    rng = np.random.default_rng(3)
    n = 120
    target = _peaks(rng, n)
    source = np.roll(target, 10, axis=1)  # a 1 eV shift: learnable
    groups = [f"s{i // 4}" for i in range(n)]
    cv = cross_validate(source, target, groups, alphas=(1e-4, 1e3), n_folds=4)
    assert cv[1e-4] < cv[1e3]
    R = types.SimpleNamespace
    recs = [
        R(key=(g, i), structure_id=g, fidelity="reference", spectrum=s) for i, (g, s) in enumerate(zip(groups, source))
    ]
    recs += [R(key=(g, i), structure_id=g, fidelity="xtb", spectrum=t) for i, (g, t) in enumerate(zip(groups, target))]
    f = fit_fidelity_map(recs, alphas=(1e-4, 1e3), n_folds=4, meta={"store": "toy"})
    assert f.alpha == 1e-4 and f.meta["n_structures"] == 30 and f.meta["store"] == "toy"
    assert set(f.meta["cv_rms_by_alpha"]) == {"0.0001", "1000.0"}
    x, y, r = fidelity_pairs(recs)
    assert len(r) == n and np.array_equal(x, source) and np.array_equal(y, target)
    with pytest.raises(ValueError, match="no site has both a 'reference' and a 'xtb'"):
        fidelity_pairs(recs[:n])


def test_with_mapped_spectra_replaces_only_the_spectrum():
    from s2s.environment import Environment
    from s2s.site_record import SiteRecord

    rng = np.random.default_rng(4)
    x = _peaks(rng, 20)
    f = FidelityMap.fit(x, _peaks(rng, 20, shift=1.0), 0.1)
    env = Environment([0, 1], np.array([[0.0, 0, 0], [1.6, 0, 0]]), np.array([0, 1]))
    rec = SiteRecord(spectrum=x[0], environment=env, structure_id="q", site_index=3, simulator="gpaw-hch")
    (out,) = with_mapped_spectra([rec], f)
    np.testing.assert_array_equal(out.spectrum, f(x[:1])[0])
    assert (out.structure_id, out.site_index, out.simulator) == ("q", 3, "gpaw-hch")
    assert out.meta["fidelity_map"] == "reference->xtb" and "fidelity_map" not in rec.meta


def test_the_domain_check_flags_what_the_map_would_hide(tmp_path):
    """A linear map makes noise or a flat line look target-like; the domain check on the raw input does not."""
    rng = np.random.default_rng(5)
    n = 200
    target = _peaks(rng, n)
    source = normalize(np.roll(target, 8, axis=1) + 1e-4)
    groups = [f"s{i // 5}" for i in range(n)]
    R = types.SimpleNamespace
    recs = [
        R(key=(g, i), structure_id=g, fidelity="reference", spectrum=s) for i, (g, s) in enumerate(zip(groups, source))
    ]
    recs += [R(key=(g, i), structure_id=g, fidelity="xtb", spectrum=t) for i, (g, t) in enumerate(zip(groups, target))]
    f = fit_fidelity_map(recs, alphas=(1e-3,))
    assert f.basis.shape == (20, N_GRID) and f.domain_threshold > 0
    new = normalize(np.roll(_peaks(rng, 50), 8, axis=1) + 1e-4)  # new sites of the same kind
    assert f.in_domain(new).mean() >= 0.9
    noise, flat = normalize(rng.uniform(0, 1, (10, N_GRID))), normalize(np.ones((10, N_GRID)))
    assert not f.in_domain(noise).any() and not f.in_domain(flat).any()
    assert f.domain_error(noise).min() > 3 * f.domain_threshold
    g = FidelityMap.from_file(f.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(g.domain_error(noise), f.domain_error(noise))
    assert g.domain_threshold == f.domain_threshold
    bare = FidelityMap.fit(source, target, 1e-3)
    with pytest.raises(ValueError, match="no domain basis"):
        bare.domain_error(noise)
