"""Extended XYZ round trip, atomic JSON, results.json updates."""

import json

import numpy as np
import pytest

from s2s.environment import Environment
from s2s.files import write_json
from s2s.io import environments_to_extxyz, read_extxyz, write_extxyz
from s2s.studies.results import read_results, update_results


def test_extxyz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    envs = []
    for n in (1, 5, 9):
        x = rng.normal(size=(n, 3))
        x[0] = 0
        envs.append(Environment(rng.integers(0, 2, n), x, rng.integers(0, 4, n)))
    path = write_extxyz(tmp_path / "a.xyz", envs, ["sample=0", "sample=1", "sample=2"])
    back = read_extxyz(path)
    assert len(back) == 3
    for a, b in zip(envs, back):
        assert np.array_equal(a.species, b.species) and np.array_equal(a.shell, b.shell)
        assert np.allclose(a.coords, b.coords, atol=1e-8)
    assert not list(tmp_path.glob("*.tmp"))
    assert environments_to_extxyz(envs[:1]).splitlines()[0] == "1"


def test_read_extxyz_rejects_other_elements(tmp_path):
    p = tmp_path / "bad.xyz"
    p.write_text('2\nProperties=species:S:1:pos:R:3 pbc="F F F"\nO 0 0 0\nAl 1.8 0 0\n')
    with pytest.raises(ValueError, match="bad.xyz.*Al"):
        read_extxyz(p)
    with pytest.raises(FileNotFoundError, match="nope.xyz"):
        read_extxyz(tmp_path / "nope.xyz")


def test_update_results_keeps_other_keys(tmp_path):
    p = tmp_path / "figures" / "results.json"
    update_results("data", {"n_sites": 3}, p)
    update_results("test_generation", {"rmsd_shell1": np.float64(0.1)}, p)
    update_results("data", {"n_sites": 4}, p)
    assert read_results(p) == {"data": {"n_sites": 4}, "test_generation": {"rmsd_shell1": 0.1}}
    assert json.loads(p.read_text())["data"]["n_sites"] == 4
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_results(p)


def test_write_json_handles_numpy(tmp_path):
    p = write_json(tmp_path / "x.json", {"a": np.arange(3), "b": np.int64(2)})
    assert json.loads(p.read_text()) == {"a": [0, 1, 2], "b": 2}
