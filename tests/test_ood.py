"""OOD score (s2s.retrieval.ood): k-NN spectral distance as a percentile of the training set's
leave-one-structure-out distribution."""

import numpy as np
import pytest

from s2s.retrieval.ood import OODScorer, knn_distance
from s2s.spectrum import GRID, normalize


def _silica_like(rng, n_structures, sites=3):
    """Made-up 'crystalline SiO2' spectra: two main peaks whose positions vary per structure,
    sites of one structure near-identical."""
    spectra, groups = [], []
    for s in range(n_structures):
        p1, p2 = rng.uniform(2.5, 4.0), rng.uniform(8.0, 11.0)
        w1 = rng.uniform(0.8, 1.3)
        for _ in range(sites):
            y = np.exp(-0.5 * ((GRID - p1 - rng.normal(0, 0.05)) / w1) ** 2) + 0.7 * np.exp(
                -0.5 * ((GRID - p2) / 2.0) ** 2
            )
            y = y * (GRID > -0.2) + rng.normal(0, 0.002, GRID.size).clip(0)
            spectra.append(y)
            groups.append(f"s{s}")
    return normalize(np.array(spectra)), np.array(groups)


def _si_rich(rng, n):
    """Made-up 'Si-rich amorphous' spectra: a strong pre-edge-like peak near the onset and a
    washed-out post-edge."""
    out = []
    for _ in range(n):
        p0 = rng.uniform(0.3, 1.0)
        y = 1.5 * np.exp(-0.5 * ((GRID - p0) / 0.5) ** 2) + 0.4 * np.exp(-0.5 * ((GRID - 7.0) / 4.0) ** 2)
        out.append(y * (GRID > -0.5))
    return normalize(np.array(out))


def test_si_rich_spectra_score_higher_than_held_out_structures():
    rng = np.random.default_rng(0)
    train, groups = _silica_like(rng, 40)
    test, _ = _silica_like(rng, 15)
    ood = _si_rich(rng, 10)
    sc = OODScorer.fit(train, groups, k=5, threshold=95)
    s_in, s_out = sc.score(test), sc.score(ood)
    assert s_out["percentile"].min() > np.median(s_in["percentile"])
    assert s_out["flag"].all()
    assert s_in["flag"].mean() <= 0.2
    assert np.all(s_out["ratio"] > 1.0)
    # in-distribution percentiles spread over the range (the calibration is meaningful)
    assert 20 < np.median(s_in["percentile"]) < 80


def test_percentile_and_leave_one_structure_out():
    rng = np.random.default_rng(1)
    train, groups = _silica_like(rng, 12, sites=2)
    sc = OODScorer.fit(train, groups, k=3)
    # the reference distribution excludes the own structure: a training spectrum scored against
    # the full set (its twin site included) looks closer than its LOSO distance
    own = sc.score(train)["distance"]
    loso = knn_distance(train, train, 3, groups, groups)
    assert np.all(own <= loso + 1e-12)
    assert sc.percentile([0.0])[0] == 0.0 and sc.percentile([1e9])[0] == 100.0
    assert np.all(np.diff(sc.percentile(np.sort(loso))) >= 0)
    d = sc.describe(_si_rich(rng, 1)[0])
    assert d["flag"] and "out of distribution" in d["warning"] and d["percentile"] == 100.0
    d_in = sc.describe(train[0])
    assert d_in["warning"] is None and not d_in["flag"]


def test_bad_input():
    rng = np.random.default_rng(2)
    train, groups = _silica_like(rng, 3)
    with pytest.raises(ValueError, match="groups"):
        OODScorer.fit(train, groups, k=5)
    with pytest.raises(ValueError, match="threshold"):
        OODScorer.fit(train, None, k=2, threshold=100)
    sc = OODScorer.fit(train, None, k=2)
    with pytest.raises(ValueError, match="NaN"):
        sc.score(np.full(200, np.nan))


def test_neighbours_shared_by_ood_and_manifold():
    """One k-NN implementation: OOD (rms) and manifold (euclidean = sqrt(D) x rms) agree."""
    from s2s.retrieval.neighbours import knn_distance as knn
    from s2s.retrieval.neighbours import loso_distance, nearest
    from s2s.studies.manifold import nearest_distance

    rng = np.random.default_rng(3)
    train, groups = _silica_like(rng, 8, sites=2)
    test, _ = _silica_like(rng, 4)
    d, i = nearest(test, train, 3)
    assert d.shape == i.shape == (len(test), 3) and np.all(np.diff(d, axis=1) >= 0)
    np.testing.assert_allclose(d[:, 0], np.sqrt(np.mean((test - train[i[:, 0]]) ** 2, axis=1)), rtol=1e-12)
    de, ie = nearest_distance(train, test)
    np.testing.assert_array_equal(ie, i[:, 0])
    np.testing.assert_allclose(de, np.sqrt(train.shape[1]) * d[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(knn(test, train, 3), d.mean(axis=1))
    # leave one structure out: never the twin site of the same structure
    _, il = nearest(train, train, 1, groups, groups)
    assert np.all(groups[il[:, 0]] != groups)
    assert np.all(loso_distance(train, groups, 1) >= nearest(train, train, 2)[0][:, 1] - 1e-15)
    with pytest.raises(ValueError, match="metric"):
        nearest(test, train, metric="cosine")


def _two_fidelities(rng, n_dense, n_sparse, sites=3):
    """A dense library of one fidelity ('xtb', many structures) and a sparse one of another ('reference', few
    structures, its peaks moved by 1.5 eV): the same kind of spectra, two simulators."""
    dense, g_dense = _silica_like(rng, n_dense, sites)
    sparse, g_sparse = _silica_like(rng, n_sparse, sites)
    sparse = normalize(np.roll(sparse, int(round(1.5 / (GRID[1] - GRID[0]))), axis=1) + 1e-9)
    spectra = np.concatenate([dense, sparse])
    groups = np.concatenate([np.char.add("x", g_dense), np.char.add("r", g_sparse)])
    fidelities = np.array(["xtb"] * len(dense) + ["reference"] * len(sparse))
    return spectra, groups, fidelities


def test_per_fidelity_calibration_does_not_flag_the_sparse_fidelity():
    """Pooled, the dense fidelity's tight distances set the edge, so held-out spectra of the sparse one look
    out of distribution; calibrated per fidelity they do not, and bad input is still flagged."""
    from s2s.retrieval.ood import PerFidelityOODScorer, fit_ood

    rng = np.random.default_rng(4)
    spectra, groups, fidelities = _two_fidelities(rng, 120, 20)
    held_out, _, fid_held_out = _two_fidelities(rng, 10, 30)
    sparse_in = held_out[fid_held_out == "reference"]
    pooled = fit_ood(spectra, groups)
    per = fit_ood(spectra, groups, fidelities)
    assert isinstance(pooled, OODScorer) and isinstance(per, PerFidelityOODScorer)
    assert set(per.parts) == {"xtb", "reference"}
    assert per.score(sparse_in)["flag"].mean() <= 0.2
    assert per.score(sparse_in)["flag"].mean() < pooled.score(sparse_in)["flag"].mean()
    s = per.score(held_out)
    np.testing.assert_array_equal(s["fidelity"], fid_held_out)  # each read against its own library
    bad = per.score(_si_rich(rng, 10))
    assert bad["flag"].all() and np.all(bad["ratio"] > 1.0)
    # the percentile is the lowest over the libraries, each computed by its own OODScorer
    parts = [per.parts[n].score(held_out)["percentile"] for n in ("xtb", "reference")]
    np.testing.assert_array_equal(s["percentile"], np.minimum(*parts))
    d = per.describe(_si_rich(rng, 1)[0])
    assert d["flag"] and "every fidelity's library flags it" in d["warning"]
    assert d["n_reference"] == len(spectra) and d["nearest_fidelity"] in per.parts
    d_in = per.describe(sparse_in[0])
    assert d_in["nearest_fidelity"] == "reference" and d_in["warning"] is None


def test_per_fidelity_bad_input():
    from s2s.retrieval.ood import PerFidelityOODScorer, fit_ood

    rng = np.random.default_rng(5)
    spectra, groups, fidelities = _two_fidelities(rng, 10, 1)
    with pytest.raises(ValueError, match="'reference' has 1 structure"):
        fit_ood(spectra, groups, fidelities)
    with pytest.raises(ValueError, match="must agree"):
        PerFidelityOODScorer.fit(spectra, groups, fidelities[:-1])
    # one fidelity only: the plain scorer, k capped at the structures - 1
    sc = fit_ood(spectra[:9], groups[:9], fidelities[:9])
    assert isinstance(sc, OODScorer) and sc.k == 2
