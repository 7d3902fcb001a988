"""Tests of the HDF5 dataset format, its error messages and the grouped train/test split."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest

from s2s.dataset import FORMAT_VERSION, Dataset, DatasetFormatError, SiteRecord
from s2s.environment import Environment
from s2s.spectrum import GRID
from s2s.splits import make_split


def _env(rng: np.random.Generator, n: int) -> Environment:
    species = rng.integers(0, 2, n)
    species[0] = 1
    coords = rng.normal(scale=2.0, size=(n, 3))
    coords[0] = 0.0
    shell = np.sort(rng.integers(1, 4, n))
    shell[0] = 0
    return Environment(species, coords, shell, {"cutoff_A": 4.5, "n": int(n)})


def _dataset(n_structures: int = 12, seed: int = 0, structure=None) -> Dataset:
    """Ragged environments (2..40 atoms), 1..5 sites per structure, varied provenance."""
    rng = np.random.default_rng(seed)
    records, structures = [], {}
    for s in range(n_structures):
        sid = f"struct-{s:03d}"
        if structure is not None:
            structures[sid] = structure
        for k in range(int(rng.integers(1, 6))):
            spec = rng.random(GRID.size)
            records.append(
                SiteRecord(
                    spectrum=spec / np.trapezoid(spec, GRID),
                    environment=_env(rng, int(rng.integers(2, 41))),
                    structure_id=sid,
                    site_index=3 * k + 1,
                    multiplicity=int(rng.integers(1, 7)),
                    formula="SiO2" if s % 3 else "Si2O",
                    source="aflow-prototype" if s % 2 else "pyxtal+chgnet",
                    simulator="xtb-gfn1",
                    settings={"sigma_eV": 0.3 + 0.1 * (s % 2), "charge": 1, "supercell": [2, 2, 3]},
                    meta={"note": f"site {k}", "energy_eV": float(rng.normal())},
                )
            )
    return Dataset.from_records(records, structures, {"description": "test set"})


def test_round_trip_exact(tmp_path, alpha_quartz):
    ds = _dataset(structure=alpha_quartz)
    ds.records[0].x = math.nan  # an unknown composition survives as NaN
    path = ds.save(tmp_path / "data.h5")
    back = Dataset.load(path)
    assert len(back) == len(ds) > 12
    for a, b in zip(ds, back):
        assert a == b
        assert a.environment.n_atoms == b.environment.n_atoms
        assert a.environment.meta == b.environment.meta
    assert back.structures == ds.structures
    assert back.structure("struct-000").matches(alpha_quartz)
    assert back.meta == ds.meta
    assert np.array_equal(back.spectra(), ds.spectra())
    assert back.spectra().shape == (len(ds), 200)
    sizes = {e.n_atoms for e in back.environments()}
    assert len(sizes) > 5  # genuinely ragged
    assert math.isnan(back[0].x)
    assert {r.x for r in back.records[1:]} == {0.5, 2.0}
    assert back[1].composition == {"formula": back[1].formula, "x": back[1].x}


def test_round_trip_real_environment(tmp_path, alpha_quartz):
    """An environment extracted by s2s.environment (meta with per-atom lists) survives exactly."""
    from s2s.environment import environments_from_structure

    env = environments_from_structure(alpha_quartz, structure_id="alpha-quartz").environments[0]
    spec = np.exp(-0.5 * ((GRID - 4.0) / 1.2) ** 2)
    rec = SiteRecord(
        spec / np.trapezoid(spec, GRID),
        env,
        "alpha-quartz",
        env.meta["site_index"],
        multiplicity=env.meta["multiplicity"],
        formula=env.meta["formula"],
        source="literature",
    )
    back = Dataset.load(Dataset.from_records([rec], {"alpha-quartz": alpha_quartz}).save(tmp_path / "q.h5"))
    assert back[0] == rec and back[0].environment.meta == env.meta and back[0].x == 2.0
    assert back[0].multiplicity == 6


def test_creation_record_and_settings_dedup(tmp_path):
    ds = _dataset()
    path = ds.save(tmp_path / "d.h5")
    with h5py.File(path) as f:
        assert f.attrs["format"] == "s2s-dataset"
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f.attrs["created_utc"] == ds.meta["created_utc"]
        assert "s2s" in f.attrs["software"]
        assert f["settings/json"].shape == (2,)  # two distinct settings dicts stored once
        assert f["sites/env_offsets"][-1] == f["environments/species"].shape[0]


def test_empty_dataset_round_trip(tmp_path):
    ds = Dataset.from_records([], {})
    back = Dataset.load(ds.save(tmp_path / "empty.h5"))
    assert len(back) == 0 and back.spectra().shape == (0, 200)


def test_save_is_atomic(tmp_path, monkeypatch):
    import s2s.dataset as dsmod

    path = tmp_path / "d.h5"
    ds = _dataset(4)
    ds.save(path)
    before = path.read_bytes()

    def boom(f, d):
        f.create_group("half-written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(dsmod, "_write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _dataset(6).save(path)
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(tmp_path) == ["d.h5"]  # and no temp file is left behind


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        Dataset.load(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    p = tmp_path / "bad.h5"
    p.write_text("energy intensity\n")
    with pytest.raises(DatasetFormatError, match="bad.h5: not an HDF5 file"):
        Dataset.load(p)


def test_newer_version_refused(tmp_path):
    path = _dataset(3).save(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(DatasetFormatError, match=rf"d.h5: .*version {FORMAT_VERSION + 1}.*upgrade s2s"):
        Dataset.load(path)


def test_wrong_format_name(tmp_path):
    path = _dataset(3).save(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(DatasetFormatError, match="format is 'something-else'"):
        Dataset.load(path)
    with h5py.File(path, "a") as f:
        del f.attrs["format"]
    with pytest.raises(DatasetFormatError, match="not an s2s dataset"):
        Dataset.load(path)


@pytest.mark.parametrize(
    "field, pattern",
    [
        ("sites/spectrum", r"missing field '/sites/spectrum' \(expected \(M, 200\) float array\)"),
        ("environments/coords", r"missing field '/environments/coords' \(expected \(N, 3\) float\)"),
        ("structures/json", r"missing field '/structures/json'"),
    ],
)
def test_missing_field_named(tmp_path, field, pattern):
    path = _dataset(3).save(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        del f[field]
    with pytest.raises(DatasetFormatError, match=r"d\.h5: " + pattern):
        Dataset.load(path)


def test_bad_field_shape_named(tmp_path):
    path = _dataset(3).save(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        n = f["sites/site_index"].shape[0]
        del f["sites/site_index"]
        f["sites/site_index"] = np.arange(n + 1)
    with pytest.raises(DatasetFormatError, match=r"'/sites/site_index' has length \d+, expected \d+"):
        Dataset.load(path)


def test_grid_mismatch_refused(tmp_path):
    path = _dataset(3).save(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f.attrs["grid_step_eV"] = 0.2
    with pytest.raises(DatasetFormatError, match="grid"):
        Dataset.load(path)


def test_record_validation():
    env = Environment([1, 0], [[0, 0, 0], [1.6, 0, 0]], [0, 1])
    with pytest.raises(ValueError, match=r"spectrum must have shape \(200,\)"):
        SiteRecord(np.ones(100), env, "s", 0)
    with pytest.raises(ValueError, match="NaN"):
        SiteRecord(np.full(200, np.nan), env, "s", 0)
    with pytest.raises(ValueError, match="split"):
        SiteRecord(np.ones(200), env, "s", 0, split="validation")
    with pytest.raises(ValueError, match="JSON"):
        SiteRecord(np.ones(200), env, "s", 0, settings={"f": object()})
    r = SiteRecord(np.ones(200), env, "s", 0, formula="Si3O4")
    assert r.x == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="duplicate"):
        Dataset.from_records([r, r])


def test_filter_and_views():
    ds = _dataset()
    sub = ds.filter(lambda r: r.formula == "Si2O")
    assert len(sub) > 0 and all(r.x == 0.5 for r in sub)
    assert set(sub.structure_ids()) <= set(ds.structure_ids())
    assert isinstance(ds[2:5], Dataset) and len(ds[2:5]) == 3
    assert ds[[0, 2]][1] is ds[2]


def test_split_grouped_deterministic(tmp_path):
    ds = _dataset(n_structures=60, seed=3)
    a = make_split(ds, test_fraction=0.1, seed=7)
    b = make_split(ds, test_fraction=0.1, seed=7)
    assert [r.split for r in a] == [r.split for r in b]
    train_ids = {r.structure_id for r in a.train}
    test_ids = {r.structure_id for r in a.test}
    assert train_ids and test_ids and not train_ids & test_ids  # no structure in both
    assert train_ids | test_ids == set(ds.structure_ids())
    assert len(a.train) + len(a.test) == len(ds)
    assert abs(len(a.test) - 0.1 * len(ds)) <= 3  # ~10 % of the sites
    assert all(r.split == "" for r in ds)  # the input is not modified
    c = make_split(ds, test_fraction=0.1, seed=8)
    assert {r.structure_id for r in c.test} != test_ids
    # independent of record order
    rev = Dataset(list(reversed(ds.records)), ds.structures, ds.meta)
    assert {r.structure_id for r in make_split(rev, 0.1, 7).test} == test_ids
    # seed recorded in the file
    back = Dataset.load(a.save(tmp_path / "split.h5"))
    assert back.meta["split_seed"] == 7 and back.meta["split_test_fraction"] == 0.1
    with h5py.File(tmp_path / "split.h5") as f:
        assert f.attrs["split_seed"] == 7
    assert [r.split for r in back] == [r.split for r in a]


def test_split_small_and_bad_fraction():
    ds = _dataset(n_structures=2, seed=1)
    s = make_split(ds, 0.1, 0)
    assert len(s.test) > 0 and len(s.train) > 0
    with pytest.raises(ValueError, match="test_fraction"):
        make_split(ds, 1.5)


def test_hash_split_is_stable_as_the_set_grows():
    big = _dataset(n_structures=60, seed=3)
    ids = big.structure_ids()
    keep = set(ids[:30])
    small = Dataset(
        [r for r in big if r.structure_id in keep], {k: v for k, v in big.structures.items() if k in keep}, big.meta
    )
    a = make_split(small, 0.2, seed=5, method="hash")
    b = make_split(big, 0.2, seed=5, method="hash")
    side_a = {r.structure_id: r.split for r in a}
    side_b = {r.structure_id: r.split for r in b}
    assert all(side_b[k] == v for k, v in side_a.items())  # nobody moved when 30 structures were added
    test_ids = {k for k, v in side_b.items() if v == "test"}
    assert 0 < len(test_ids) < len(ids) and 3 <= len(test_ids) <= 24  # ~20 % of 60 structures
    assert b.meta["split_method"] == "hash"
    c = make_split(big, 0.2, seed=6, method="hash")
    assert {r.structure_id for r in c.test} != test_ids  # the seed matters
    with pytest.raises(ValueError, match="method"):
        make_split(big, 0.2, method="random")
