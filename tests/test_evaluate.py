"""Cached generation and per-site evaluation (s2s.studies.evaluate)."""

import math

import numpy as np
import pytest
import torch

from s2s.config import tiny_preset
from s2s.environment import SI, Environment, O
from s2s.model.cache import cache_path, generate_cached
from s2s.model.train import FINAL, train
from s2s.studies.evaluate import (
    METHODS,
    composition_key,
    evaluate_generation,
    group_indices,
    metric_array,
    pick_cases,
    summary_table,
)

torch.set_num_threads(1)
GRID = -1.0 + 0.1 * np.arange(200)


def spectrum(center):
    s = np.exp(-0.5 * ((GRID - center) / 1.0) ** 2)
    return s / np.trapezoid(s, GRID)


def silica_like(rot_deg=0.0):
    """O bridging two Si (1.6 Å, 150 deg) plus one second-shell O on each Si."""
    th = np.deg2rad(150.0)
    c = np.array(
        [
            [0, 0, 0],
            [1.6, 0, 0],
            [1.6 * np.cos(th), 1.6 * np.sin(th), 0],
            [2.2, 1.4, 0.3],
            [1.6 * np.cos(th) - 0.6, 1.6 * np.sin(th) + 1.4, -0.4],
        ]
    )
    a = np.deg2rad(rot_deg)
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return Environment([O, SI, SI, O, O], c @ r.T, [0, 1, 1, 2, 2])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    envs = [silica_like(), silica_like(30.0)] * 4
    spectra = np.array([spectrum(3.0), spectrum(8.0)] * 4)
    train(tiny_preset(), envs, spectra, out, max_steps=3, progress=False)
    return out / FINAL


def same(a, b):
    return len(a) == len(b) and all(
        len(ra) == len(rb)
        and all(
            np.array_equal(x.species, y.species)
            and np.array_equal(x.coords, y.coords)
            and np.array_equal(x.shell, y.shell)
            and x.meta == y.meta
            for x, y in zip(ra, rb)
        )
        for ra, rb in zip(a, b)
    )


def test_cache_hit_returns_identical_environments(model_path, tmp_path, monkeypatch):
    spectra = np.array([spectrum(3.0), spectrum(8.0), spectrum(5.0)])
    kw = dict(n_samples=2, n_steps=5, seed=3, cache_dir=tmp_path / "c", progress=False)
    from s2s.model.cache import generation_cache_path

    kw_path = {k: v for k, v in kw.items() if k != "progress"}
    assert not generation_cache_path(model_path, spectra, [5, 4, 6], **kw_path).exists()
    first = generate_cached(model_path, spectra, [5, 4, 6], **kw)
    path = generation_cache_path(model_path, spectra, [5, 4, 6], **kw_path)
    assert path.exists()
    from s2s.files import file_sha256
    from s2s.model.cache import cache_info

    info = cache_info(path)
    assert info["seed"] == 3 and info["n_steps"] == 5 and info["n_samples"] == 2 and info["seconds"] > 0
    assert info["model_sha256"] == file_sha256(model_path)
    assert [len(r) for r in first] == [2, 2, 2]
    assert [e.n_atoms for r in first for e in r] == [5, 5, 4, 4, 6, 6]
    files = list((tmp_path / "c").rglob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "c").rglob("*.tmp"))

    # a hit must not sample again
    import s2s.model.sample

    def boom(*a, **k):
        raise AssertionError("generate called on a cache hit")

    monkeypatch.setattr(s2s.model.sample, "generate", boom)
    second = generate_cached(model_path, spectra, [5, 4, 6], **kw)
    assert same(first, second)


def test_cache_matches_uncached_generation(model_path, tmp_path):
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    spectra = np.array([spectrum(3.0), spectrum(8.0)])
    cached = generate_cached(model_path, spectra, [5, 5], n_steps=4, seed=1, cache_dir=tmp_path, progress=False)
    direct = generate(load_model(model_path), spectra, [5, 5], n_steps=4, seed=1)
    assert all(
        np.allclose(a[0].coords, b[0].coords) and np.array_equal(a[0].species, b[0].species)
        for a, b in zip(cached, direct)
    )


def test_generated_in_size_order_and_returned_in_input_order(model_path, tmp_path):
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    spectra = np.array([spectrum(3.0), spectrum(8.0), spectrum(5.0)])
    counts = np.array([5, 4, 5])  # one size chunk (5 <= 1.25 x 4)
    cached = generate_cached(model_path, spectra, counts, n_steps=3, seed=2, cache_dir=tmp_path, progress=False)
    assert [r[0].n_atoms for r in cached] == [5, 4, 5]
    assert [r[0].meta["spectrum_index"] for r in cached] == [0, 1, 2]
    order = np.argsort(counts, kind="stable")
    direct = generate(load_model(model_path), spectra[order], counts[order], n_steps=3, seed=2)
    for j, d in zip(order, direct):
        assert np.allclose(cached[j][0].coords, d[0].coords)


def test_buckets_are_chunks_seeded_one_by_one(model_path):
    """generate(buckets=True) = the size chunks sampled one after the other, chunk k from chunk_seed(seed, k):
    the stream the notebooks' cache entries were made with (issue 16: one generate(), numbers unchanged)."""
    from s2s.model.sample import chunk_seed, generate, size_chunks
    from s2s.model.train import load_model

    model = load_model(model_path)
    spectra = np.array([spectrum(c) for c in (3.0, 8.0, 5.0, 4.0, 6.0)])
    counts = np.array([5, 12, 4, 13, 5])
    chunks = size_chunks(counts, 2, weight=2)
    assert len(chunks) > 1
    got = generate(model, spectra, counts, n_samples=2, n_steps=3, seed=4, batch_size=4, buckets=True)
    for k, idx in enumerate(chunks):
        ref = generate(model, spectra[idx], counts[idx], n_samples=2, n_steps=3, seed=chunk_seed(4, k), batch_size=4)
        for j, row in zip(idx, ref):
            assert [e.meta for e in got[j]] == [{"spectrum_index": int(j), "sample": s} for s in range(2)]
            assert all(
                np.array_equal(a.coords, b.coords) and np.array_equal(a.species, b.species) for a, b in zip(got[j], row)
            )
    plain = generate(model, spectra, counts, n_samples=2, n_steps=3, seed=4, batch_size=4)
    assert not all(np.array_equal(a[0].coords, b[0].coords) for a, b in zip(got, plain))


def test_buckets_with_counts_from_the_model(model_path):
    """n_atoms=None with buckets: counts drawn first (seeded), every graph sampled at its own count."""
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    model = load_model(model_path)
    spectra = np.array([spectrum(3.0), spectrum(8.0)])
    a = generate(model, spectra, None, n_samples=3, n_steps=2, seed=1, buckets=True)
    b = generate(model, spectra, None, n_samples=3, n_steps=2, seed=1, buckets=True)
    assert same(a, b) and [len(r) for r in a] == [3, 3]
    assert all(e.n_atoms >= 1 and e.species[0] == O for r in a for e in r)
    with pytest.raises(ValueError, match="n_samples"):
        generate(model, spectra, None, n_samples=0)


def test_size_chunks():
    from s2s.model.sample import size_chunks

    counts = np.array([15, 3, 51, 14, 16, 3, 15])
    # the 51-atom target alone, the two 3-atom ones together, the 14-16 ones padded to 16
    assert [c.tolist() for c in size_chunks(counts, 64)] == [[1, 5], [3, 0, 6, 4], [2]]
    # a large call overhead merges the small ones into the 16-atom batch
    assert [c.tolist() for c in size_chunks(counts, 64, overhead=2000.0)] == [[1, 5, 3, 0, 6, 4], [2]]
    assert [c.tolist() for c in size_chunks(counts, 64, overhead=0.0)] == [[1, 5], [3], [0, 6], [4], [2]]
    chunks = size_chunks(counts, 2)
    assert all(len(c) <= 2 for c in chunks)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(7))
    many = np.array([15] * 100 + [51] * 3)
    assert [len(c) for c in size_chunks(many, 64)] == [36, 64, 3]
    with pytest.raises(ValueError):
        size_chunks(counts, 0)


def test_chunks_cover_all_sizes(model_path, tmp_path):
    spectra = np.array([spectrum(3.0), spectrum(8.0), spectrum(5.0), spectrum(4.0)])
    counts = [51, 3, 4, 13]  # three chunks: {3, 4}, {13}, {51}
    out = generate_cached(model_path, spectra, counts, n_steps=2, seed=0, cache_dir=tmp_path, progress=False)
    assert [r[0].n_atoms for r in out] == counts
    assert [r[0].meta["spectrum_index"] for r in out] == [0, 1, 2, 3]


def test_key_changes_with_seed_steps_counts_and_model(model_path, tmp_path):
    spectra = np.array([spectrum(3.0)])
    base = dict(n_steps=3, seed=0, cache_dir=tmp_path, progress=False)
    a = generate_cached(model_path, spectra, [5], **base)
    b = generate_cached(model_path, spectra, [5], **{**base, "seed": 1})
    generate_cached(model_path, spectra, [5], **{**base, "n_steps": 4})
    generate_cached(model_path, spectra, [6], **base)
    assert len(list(tmp_path.rglob("*.npz"))) == 4
    assert not np.allclose(a[0][0].coords, b[0][0].coords)
    # a copy of the model file (same bytes) hits; a re-saved one (other bytes) does not
    same_bytes = tmp_path / "copy.pt"
    same_bytes.write_bytes(model_path.read_bytes())
    generate_cached(same_bytes, spectra, [5], **base)
    assert len(list(tmp_path.rglob("*.npz"))) == 4
    state = torch.load(model_path, weights_only=False)
    state["step"] = state.get("step", 0) + 1
    other = tmp_path / "other.pt"
    torch.save(state, other)
    generate_cached(other, spectra, [5], **base)
    assert len(list(tmp_path.rglob("*.npz"))) == 5


def test_bad_inputs(model_path, tmp_path):
    with pytest.raises(ValueError, match="one count per spectrum"):
        generate_cached(model_path, np.array([spectrum(3.0)]), [5, 5], cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="model file"):
        generate_cached(tmp_path / "nope.pt", np.array([spectrum(3.0)]), [5], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="n_samples"):
        generate_cached(model_path, np.array([spectrum(3.0)]), [5], n_samples=0, cache_dir=tmp_path)


def test_corrupt_cache_is_reported(model_path, tmp_path):
    from s2s.model.cache import load_environments_npz as _load_npz
    from s2s.model.cache import save_environments_npz as _save_npz

    envs = [[silica_like()], [silica_like(10.0)]]
    p = tmp_path / "x.npz"
    _save_npz(p, envs, {})
    back = _load_npz(p)
    assert np.allclose(back[1][0].coords, envs[1][0].coords)
    with np.load(p) as z:
        d = dict(z)
    d["n_per"] = d["n_per"] + 1
    np.savez(p, **d)
    with pytest.raises(ValueError, match="corrupt"):
        _load_npz(p)


def test_self_evaluation_is_perfect():
    targets = [silica_like(), silica_like(45.0)]
    # the same environments, rotated and with the neighbours permuted
    gen = []
    for t in targets:
        perm = np.array([0, 2, 1, 4, 3])
        a = np.deg2rad(70.0)
        r = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        gen.append(Environment(t.species[perm], t.coords[perm] @ r.T, t.shell[perm]))
    rows = evaluate_generation(targets, gen)
    assert len(rows) == 2 and rows[1]["index"] == 1
    for m in ("paper", "best"):
        tab = summary_table(rows, m)
        assert tab["rmsd_all"] == pytest.approx(0.0, abs=1e-6)
        assert tab["rmsd_shell1"] == pytest.approx(0.0, abs=1e-6)
        assert tab["rmsd_shell2"] == pytest.approx(0.0, abs=1e-6)
        assert math.isnan(tab["rmsd_shell3"])  # no third shell in these targets
        assert tab["cn_error_shell1_pct"] == 0.0 and tab["cn_error_shell2_pct"] == 0.0
        assert tab["species_accuracy"] == 1.0 and tab["n_test"] == 2
        assert tab["validity"] == 1.0  # the target itself is chemistry
        assert set(tab) == {
            "rmsd_shell1",
            "rmsd_shell2",
            "rmsd_shell3",
            "rmsd_all",
            "cn_error_shell1_pct",
            "cn_error_shell2_pct",
            "species_accuracy",
            "validity",
            "n_test",
        }


def test_evaluation_detects_errors():
    t = silica_like()
    wrong = Environment([O, SI, O, O, O], t.coords, t.shell)  # one Si -> O
    moved = Environment(t.species, t.coords * 1.1, t.shell)  # stretched by 10 %
    rows = evaluate_generation([t, t], [[wrong, moved], [t]])
    assert [(r["index"], r["sample"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]
    assert [r["paper"]["species_match"] for r in rows] == [False, True, True]
    tab = summary_table(rows, "paper", digits=3)
    assert tab["species_accuracy"] == pytest.approx(2 / 3, abs=1e-3) and tab["n_test"] == 3
    assert metric_array(rows, "paper", "rmsd_shell1")[1] == pytest.approx(0.16, abs=1e-6)  # 10 % of 1.6 Å
    assert tab["rmsd_shell1"] > 0.0
    assert metric_array(rows, "best", "rmsd_all")[1] <= metric_array(rows, "paper", "rmsd_all")[1] + 1e-12


def test_evaluate_generation_bad_input():
    with pytest.raises(ValueError, match="targets"):
        evaluate_generation([silica_like()], [])
    with pytest.raises(TypeError, match="generated\\[0\\]"):
        evaluate_generation([silica_like()], [[]])
    with pytest.raises(ValueError, match="no rows"):
        summary_table([], "paper")


def test_pick_cases_and_groups():
    v = [0.5, np.nan, 0.1, 0.9, 0.3]
    assert pick_cases(v) == {"A": 2, "B": 0, "C": 3}
    assert pick_cases([np.nan]) == {}
    assert pick_cases([0.2]) == {"A": 0}
    assert composition_key(0.25) == "0.25" and composition_key(2) == "2.00"
    g = group_indices(["1.00", "0.25", "1.00"])
    assert list(g) == ["0.25", "1.00"] and g["1.00"].tolist() == [0, 2]


def test_cache_path_layout(tmp_path):
    p = cache_path(tmp_path, "abcdef")
    assert p == tmp_path / "ab" / "abcdef.npz"


def test_spread_and_subsample():
    from s2s.studies.evaluate import spread_indices, subsample_groups

    assert spread_indices(5, None).tolist() == [0, 1, 2, 3, 4]
    assert spread_indices(5, 9).tolist() == [0, 1, 2, 3, 4]
    assert spread_indices(9, 3).tolist() == [0, 4, 8]
    assert spread_indices(0, 3).tolist() == []
    with pytest.raises(ValueError):
        spread_indices(4, 0)
    keys = ["2.00"] * 5 + ["0.25"] + ["1.00"] * 3
    assert subsample_groups(keys, 2).tolist() == [0, 4, 5, 6, 8]
    assert subsample_groups(keys, None).tolist() == list(range(9))
    assert subsample_groups([], 2).tolist() == []


def test_composition_keys_and_inputs():
    from types import SimpleNamespace

    from s2s.studies.evaluate import composition_keys, generation_inputs

    recs = [
        SimpleNamespace(meta={"composition_x": 0.25}, x=0.3, spectrum=spectrum(3.0), environment=silica_like()),
        SimpleNamespace(meta={}, x=2.0, spectrum=spectrum(5.0), environment=silica_like(10.0)),
    ]
    assert composition_keys(recs) == ["0.25", "2.00"]
    odd = [
        SimpleNamespace(meta={"composition_x": None}, x=1.5),
        SimpleNamespace(meta={"composition_x": float("nan")}, x=0.5),
    ]
    assert composition_keys(odd) == ["1.50", "0.50"]
    with pytest.raises(ValueError, match="record 0"):
        composition_keys([SimpleNamespace(meta={}, x=float("inf"), structure_id="c")])
    spectra, n_atoms = generation_inputs(recs)
    assert spectra.shape == (2, 200) and n_atoms.tolist() == [5, 5]
    with pytest.raises(ValueError, match="no records"):
        generation_inputs([])


def test_first_shell_table_separates_the_first_shell_from_its_orientation():
    """Two bridges whose outer O differ: the paper-aligned 1st-shell RMSD is off, the first shell itself is not."""
    from s2s.studies.evaluate import FIRST_SHELL_KEYS, evaluate_generation, first_shell_table

    def env(outer):
        c = [[0, 0, 0], [1.52, 0.49, 0], [-1.52, 0.49, 0], *outer]
        return Environment(species=[O, SI, SI] + [O] * len(outer), coords=c, shell=[0, 1, 1] + [2] * len(outer))

    t = env([[2.5, 2.6, 1.0], [-2.5, 2.6, -1.0], [0.3, 3.2, 2.2]])
    g = env([[2.4, 2.0, -1.9], [-2.6, 2.4, 1.5], [-0.5, 3.0, -2.4]])
    tab = first_shell_table(evaluate_generation([t, t], [g, t], methods=("paper",)), "paper", digits=4)
    assert set(FIRST_SHELL_KEYS) <= set(tab) and tab["n_test"] == 2 and tab["same_shell1_count"] == 1.0
    assert tab["rmsd_shell1"] > 0.02
    assert tab["rmsd_shell1_local"] == tab["rmsd_shell1_radial"] == tab["angle_shell1_error_deg"] == 0.0
    with pytest.raises(KeyError, match="first_shell_errors"):
        first_shell_table([{"paper": {"rmsd_shell1": 0.1}}])


def test_a_mirror_image_is_charged_by_the_paper_alignment_unless_reflections_are_allowed():
    """A chiral environment (bridging O, three outer O not related by any mirror through O*) and its
    mirror image have the same spectrum; the paper's Kabsch (det +1) cannot rotate one onto the other."""
    c = np.array([[0, 0, 0], [1.52, 0.49, 0], [-1.52, 0.49, 0], [2.5, 2.6, 1.0], [-2.3, 2.2, -1.4], [0.3, 3.2, 2.2]])
    t = Environment(species=[O, SI, SI, O, O, O], coords=c, shell=[0, 1, 1, 2, 2, 2])
    a = np.deg2rad(40.0)
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    mirror = Environment(t.species, (c * [1, 1, -1]) @ r.T, t.shell)  # z -> -z, then a rotation
    proper = summary_table(evaluate_generation([t], [mirror]), "paper")
    mirrored = {m: summary_table(evaluate_generation([t], [mirror], allow_reflection=True), m) for m in METHODS}
    assert proper["rmsd_all"] > 0.3 and proper["rmsd_shell1"] > 0.05
    for tab in mirrored.values():
        assert tab["rmsd_all"] == pytest.approx(0.0, abs=1e-6)
        assert tab["rmsd_shell1"] == pytest.approx(0.0, abs=1e-6)


def test_atom_count_scores_by_hand():
    from s2s.studies.evaluate import atom_count_scores

    p = np.array(
        [
            [0.1, 0.7, 0.2, 0.0],  # mode N = 2, true 2
            [0.5, 0.1, 0.4, 0.0],  # mode N = 1, true 3: off by 2
            [0.0, 0.0, 0.0, 1.0],  # true 6 is beyond n_max = 4: probability 0
        ]
    )
    s = atom_count_scores(p, [2, 3, 6])
    assert s["n"] == 3
    assert s["top1"] == pytest.approx(1 / 3)
    assert s["mean_abs_error"] == pytest.approx((0 + 2 + 2) / 3)
    assert s["log_likelihood"] == pytest.approx((np.log(0.7) + np.log(0.4) + np.log(1e-12)) / 3)
    with pytest.raises(ValueError, match="probabilities"):
        atom_count_scores(p, [1, 2])
