"""Fast tests of the GPAW reference driver's pure parts (no GPAW run unless asked for).

The real GPAW run needs the Debian gpaw under /usr/bin/python3 AND S2S_RUN_GPAW=1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from s2s.environment import unique_o_site_groups
from s2s.simulate import gpaw_ref as G
from s2s.simulate import supercell as SC
from s2s.spectrum import GRID

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference"


def quartz() -> Structure:
    """alpha-quartz, 9 atoms (pymatgen's AFLOW prototype A2B_hP9_152_c_a, written out)."""
    frac = [
        [0.5301, 0.5301, 2 / 3],
        [0.0, 0.4699, 1 / 3],
        [0.4699, 0.0, 0.0],
        [0.587, 0.8538, 0.786],
        [0.2668, 0.413, 0.452667],
        [0.1462, 0.7332, 0.119333],
        [0.8538, 0.587, 0.547333],
        [0.7332, 0.1462, 0.214],
        [0.413, 0.2668, 0.880667],
    ]
    return Structure(Lattice.hexagonal(4.914, 5.406), ["Si"] * 3 + ["O"] * 6, frac)


def fake_worker_output(n_occ: int = 4, n_empty: int = 6, spurious: bool = False) -> dict:
    """An xas-stage JSON as the worker writes it: bands in eV, occupations, sticks (3, n)."""
    eps = np.concatenate([np.linspace(-10, -1, n_occ), np.linspace(4.0, 14.0, n_empty)])
    occ = np.r_[np.full(n_occ, 2.0), np.zeros(n_empty)]
    if spurious:  # one extra occupied state, as pw mode with real wave functions produces
        occ[n_occ] = 2.0
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 1.0, (3, n_empty))
    return {
        "stick_energies_eV": eps[n_occ:].tolist(),
        "stick_intensity_xyz": a.tolist(),
        "eigenvalues_eV": eps.tolist(),
        "occupations": occ.tolist(),
        "n_valence_electrons": 2.0 * n_occ,
    }


# ----------------------------------------------------------------------------- structures


def test_find_supercell_reaches_min_image_with_few_cells():
    s = quartz()
    P = SC.find_supercell(s.lattice.matrix, 9.0)
    assert SC.shortest_lattice_vector(P @ s.lattice.matrix) >= 9.0
    assert round(abs(np.linalg.det(P))) == 8  # 2x2x2 (72 atoms) is the smallest
    assert np.linalg.det(P) > 0
    # a cubic 5 Å cell needs 2x2x2; a large cell needs nothing
    assert round(abs(np.linalg.det(SC.find_supercell(np.eye(3) * 5.0, 9.0)))) == 8
    assert np.array_equal(SC.find_supercell(np.eye(3) * 12.0, 9.0), np.eye(3, dtype=int))


def test_find_supercell_beats_diagonal_for_tetragonal_rutile_cell():
    # stishovite-like a=4.18, c=2.67 Å: the diagonal answer 3x3x4 has 36 cells
    cell = np.diag([4.1773, 4.1773, 2.6655])
    P = SC.find_supercell(cell, 9.0)
    assert SC.shortest_lattice_vector(P @ cell) >= 9.0
    assert round(abs(np.linalg.det(P))) < 36


def test_find_supercell_rejects_singular_cell():
    with pytest.raises(ValueError, match="non-singular"):
        SC.find_supercell(np.zeros((3, 3)), 9.0)


def test_unique_o_site_groups_quartz_and_stishovite():
    assert [m for _, m in unique_o_site_groups(quartz())] == [6]
    sti = Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.1773, 2.6655), ["Si", "O"], [[0, 0, 0], [0.3062, 0.3062, 0]]
    )
    sites = unique_o_site_groups(sti)
    assert len(sites) == 1 and sites[0][1] == 4 and sti[sites[0][0]].specie.symbol == "O"


def test_prepare_input_places_excited_o_on_its_parent(tmp_path):
    s = quartz()
    k = unique_o_site_groups(s)[0][0]
    inp = G.prepare_input(s, k, G.GPAWSettings(), tmp_path, txt="x.txt")
    assert len(inp["symbols"]) == 8 * len(s)
    assert inp["symbols"].count("O") == 48 and inp["symbols"].count("Si") == 24
    x = inp["excited_index"]
    assert inp["symbols"][x] == "O"
    assert np.allclose(inp["positions"][x], s[k].coords, atol=1e-6)
    assert inp["min_image_A"] >= 9.0
    assert inp["setup_name"] == "hch1s" and inp["nbands"] == "nao"
    json.dumps(inp)  # serialisable


def test_prepare_input_rejects_si_and_bad_index(tmp_path):
    s = quartz()
    si = next(i for i, site in enumerate(s) if site.specie.symbol == "Si")
    with pytest.raises(ValueError, match="expected O"):
        G.prepare_input(s, si, G.GPAWSettings(), tmp_path, "x.txt")
    with pytest.raises(ValueError, match="out of range"):
        G.prepare_input(s, len(s), G.GPAWSettings(), tmp_path, "x.txt")


def test_pw_settings_require_complex_dtype():
    with pytest.raises(ValueError, match="force_complex_dtype"):
        G.GPAWSettings(mode="pw", nbands=400, converge_bands=-40)
    with pytest.raises(ValueError, match="pw mode needs nbands"):
        G.GPAWSettings(mode="pw", force_complex_dtype=True)
    ok = G.GPAWSettings(mode="pw", force_complex_dtype=True, nbands=400, converge_bands=-40)
    assert ok.as_dict()["converge_bands"] == -40


def test_pw_band_count_scales_with_volume_and_energy(tmp_path):
    nb, cb = SC.pw_band_count(["Si"] * 24 + ["O"] * 48, 905.0)
    assert nb > 192 and -(nb - 192) < cb < 0  # occupied + empty; part of the empty converged
    nb2, _ = SC.pw_band_count(["Si"] * 24 + ["O"] * 48, 2 * 905.0)
    nb3, _ = SC.pw_band_count(["Si"] * 24 + ["O"] * 48, 905.0, e_max=40.0)
    assert nb2 - 192 == pytest.approx(2 * (nb - 192), abs=1) and nb3 > nb
    st = G.GPAWSettings(mode="pw", force_complex_dtype=True, nbands="auto", converge_bands="auto")
    inp = G.prepare_input(quartz(), unique_o_site_groups(quartz())[0][0], st, tmp_path, "x")
    assert isinstance(inp["nbands"], int) and inp["nbands"] > 192 and inp["converge_bands"] < 0


# ----------------------------------------------------------------------------- results


def test_sanity_check_passes_and_catches_failures():
    out = fake_worker_output()
    ok = G.sanity_check(out["eigenvalues_eV"], out["occupations"], out["n_valence_electrons"])
    assert ok["passed"] and ok["n_fully_occupied"] == 4 and ok["gap_eV"] == pytest.approx(5.0)

    bad = fake_worker_output(spurious=True)
    r = G.sanity_check(bad["eigenvalues_eV"], bad["occupations"], bad["n_valence_electrons"])
    assert not r["passed"] and "expected valence/2 = 4" in r["message"]

    occ = np.array(out["occupations"])
    occ[3], occ[4] = 1.0, 1.0  # smeared across the gap
    r = G.sanity_check(out["eigenvalues_eV"], occ, 8.0)
    assert not r["passed"] and "partially occupied" in r["message"]

    eps = np.array(out["eigenvalues_eV"])
    eps[4] = eps[3] + 0.01  # gap collapse
    r = G.sanity_check(eps, out["occupations"], 8.0, min_gap=0.05)
    assert not r["passed"] and "gap" in r["message"]
    eps[4] = eps[3] + 0.1  # open but small: passes with a warning
    r = G.sanity_check(eps, out["occupations"], 8.0, min_gap=0.01, warn_gap=0.3)
    assert r["passed"] and r["warnings"] and "small gap" in r["warnings"][0]
    assert ok["warnings"] == []


def test_parse_worker_output_validates():
    out = fake_worker_output()
    p = G.parse_worker_output(out)
    assert p["stick_intensity"].shape == (6,)
    assert np.allclose(p["stick_intensity"], np.sum(out["stick_intensity_xyz"], axis=0))
    broken = dict(out)
    del broken["occupations"]
    with pytest.raises(ValueError, match="missing field"):
        G.parse_worker_output(broken)
    broken = dict(out, stick_intensity_xyz=[[1.0, 2.0]] * 3)
    with pytest.raises(ValueError, match="expected \\(3, 6\\)"):
        G.parse_worker_output(broken)


def test_broaden_to_grid_unit_area_and_peak_position():
    y = G.broaden_to_grid(np.array([3.0, 30.0]), np.array([1.0, 5.0]), fwhm=0.5)
    assert y.shape == (200,)
    assert np.trapezoid(y, GRID) == pytest.approx(1.0)
    assert GRID[np.argmax(y)] == pytest.approx(3.0)  # the 30 eV stick is off the grid
    with pytest.raises(ValueError, match="fwhm"):
        G.broaden_to_grid(np.array([3.0]), np.array([1.0]), fwhm=0.0)


def _inp(tmp_path) -> dict:
    return G.prepare_input(quartz(), unique_o_site_groups(quartz())[0][0], G.GPAWSettings(), tmp_path, "x")


def test_build_record_relative_energies_and_grid(tmp_path):
    out = fake_worker_output()
    rec = G.build_record(
        "q",
        3,
        _inp(tmp_path),
        {"energy_eV": -1.0, "scf_iterations": 9},
        out,
        G.GPAWSettings(),
        {"scf": 1.0, "xas": 0.5, "total": 1.5},
    )
    assert rec["sanity"]["passed"]
    assert rec["energies_eV"][0] == 0.0  # onset = lowest unoccupied level
    assert rec["energies_eV"][-1] == pytest.approx(10.0)
    assert len(rec["grid_spectrum"]) == 200
    assert np.trapezoid(rec["grid_spectrum"], GRID) == pytest.approx(1.0, abs=1e-4)
    assert rec["settings"]["supercell_atoms"] == 72 and rec["settings"]["xc"] == "PBE"
    assert rec["wall_time_s"]["total"] == 1.5
    assert rec["converged_max_energy_eV"] == rec["max_energy_eV"]  # lcao: every band is exact
    inp = dict(_inp(tmp_path), converge_bands=-2)  # pw: the top 2 bands are not converged
    rec = G.build_record("q", 3, inp, {}, out, G.GPAWSettings(), {"total": 1.0})
    assert rec["converged_max_energy_eV"] == pytest.approx(rec["energies_eV"][-3])

    bad = G.build_record(
        "q", 3, _inp(tmp_path), {}, fake_worker_output(spurious=True), G.GPAWSettings(), {"total": 1.0}
    )
    assert not bad["sanity"]["passed"] and bad["grid_spectrum"] is None


def test_record_write_load_round_trip(tmp_path):
    rec = G.build_record("q", 3, _inp(tmp_path), {}, fake_worker_output(), G.GPAWSettings(), {"total": 1.0})
    path = G.record_path(tmp_path / "gpaw", "q", 3)
    G.write_json_atomic(path, rec)
    assert path.name == "q__site3.json" and not list(path.parent.glob("*.tmp"))
    back = G.load_record(path)
    assert back["energies_eV"] == rec["energies_eV"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"structure_id": "x"}))
    with pytest.raises(ValueError, match="bad.json: missing field"):
        G.load_record(bad)


# ----------------------------------------------------------------------------- shipped data


SHIPPED = sorted(REF.glob("gpaw*/*__site*.json"))  # gpaw/ (LCAO set) and gpaw_pw/ (pw checks)


@pytest.mark.skipif(not SHIPPED, reason="no reference records shipped yet")
def test_shipped_records_are_valid():
    for path in SHIPPED:
        if path.name.endswith(".failed.json"):
            continue
        rec = G.load_record(path)
        if not rec["sanity"]["passed"]:  # kept for the record, without a grid spectrum
            assert rec["grid_spectrum"] is None and rec["sanity"]["message"] != "ok", path
            continue
        assert rec["sanity"]["n_fully_occupied"] == rec["n_valence_electrons"] / 2, path
        assert np.trapezoid(rec["grid_spectrum"], GRID) == pytest.approx(1.0, abs=1e-3), path
        assert min(rec["energies_eV"]) == 0.0, path
        cif = REF / "structures" / f"{rec['structure_id']}.cif"
        assert cif.exists(), cif
        s = Structure.from_file(cif)
        assert s[rec["site_index"]].specie.symbol == "O", path
        assert rec["settings"]["min_image_A"] >= rec["settings"]["min_image"] - 1e-6


# ----------------------------------------------------------------------------- GPAW itself


@pytest.mark.skipif(shutil.which("gpaw-setup") is None, reason="gpaw-setup (Debian gpaw) not installed")
def test_ensure_core_hole_setup(tmp_path):
    d = G.ensure_core_hole_setup(tmp_path)
    assert (d / "O.hch1s.PBE").exists() and (d / "O.hch1s.dzp.basis.gz").exists()
    assert 'core_hole_state state="1s" removed="0.5"' in (d / "O.hch1s.PBE").read_text()


RUN_GPAW = os.environ.get("S2S_RUN_GPAW") == "1" and G.gpaw_available()


@pytest.mark.skipif(not RUN_GPAW, reason="set S2S_RUN_GPAW=1 (needs gpaw under /usr/bin/python3)")
def test_real_gpaw_run_small_cell(tmp_path):
    """beta-cristobalite primitive cell (6 atoms) x8, LCAO dzp: ~1-3 min on 2 cores."""
    s = Structure.from_spacegroup(
        "Fd-3m", Lattice.cubic(7.16), ["Si", "O"], [[0.125, 0.125, 0.125], [0, 0, 0]]
    ).get_primitive_structure()
    k = unique_o_site_groups(s)[0][0]
    settings = G.GPAWSettings(min_image=9.0, h=0.25)
    rec = G.run_site(s, "test_bcrist", k, settings, workdir=tmp_path, setup_dir=tmp_path / "setups")
    assert rec["sanity"]["passed"], rec["sanity"]
    assert rec["sanity"]["gap_eV"] > 2.0  # SiO2 with a half core hole stays insulating
    assert np.trapezoid(rec["grid_spectrum"], GRID) == pytest.approx(1.0, abs=1e-3)


def test_worker_is_a_package_file_and_the_venv_is_off_its_path(monkeypatch):
    """The worker ships inside s2s (no repository layout assumed); the running venv's bin is not on its PATH."""
    import sys

    assert G.WORKER.is_file() and G.WORKER.parent == Path(G.__file__).resolve().parent
    venv_bin = str(Path(sys.prefix) / "bin")
    monkeypatch.setenv("PATH", f"{venv_bin}:/usr/bin")
    path = G._worker_env()["PATH"].split(":")
    assert "/usr/bin" in path
    assert (venv_bin not in path) or sys.prefix == sys.base_prefix


def test_reference_plan_matches_shipped_records():
    """The reference table, the shipped CIFs and the GPAW records agree (every planned site is done)."""
    from s2s.resources import default_path
    from s2s.simulate.reference import make_plan, reference_structures, site_state

    ref = default_path("reference")
    if ref is None or not (ref / "structures" / "sources.json").exists():
        pytest.skip("no reference set in this checkout")
    structures = reference_structures()
    sources = json.loads((ref / "structures" / "sources.json").read_text())
    assert set(sources) == set(structures)
    plan = make_plan(["stishovite", "peroxy_quartz"], ref, structures)
    assert [k for sid, _, k, _ in plan if sid == "peroxy_quartz"] and all(
        site_state(ref / "gpaw", sid, k) == "done" for sid, _, k, _ in plan
    )


def test_reduce_cell_describes_the_same_supercell_on_reduced_vectors(tmp_path):
    """GPAW refuses some skewed supercells ('weird unit cell'); the retry's cell is the same crystal."""
    skew = Structure(
        Lattice.from_parameters(5.0, 5.2, 9.5, 90, 90, 25),  # a strongly sheared cell
        ["Si", "O", "O"],
        [[0, 0, 0], [0.31, 0.12, 0.2], [0.6, 0.5, 0.7]],
    )
    st = G.GPAWSettings()
    a = G.prepare_input(skew, 1, st, tmp_path, "x.txt")
    b = G.prepare_input(skew, 1, st, tmp_path, "x.txt", reduce_cell=True)
    assert not a["cell_reduced"] and b["cell_reduced"]
    ca, cb = np.array(a["cell"]), np.array(b["cell"])
    assert abs(np.linalg.det(ca)) == pytest.approx(abs(np.linalg.det(cb)))  # same volume
    assert not np.allclose(ca, cb)  # other vectors
    red = Lattice(cb).get_niggli_reduced_lattice().matrix
    np.testing.assert_allclose(np.sort(np.linalg.norm(red, axis=1)), np.sort(np.linalg.norm(cb, axis=1)), atol=1e-6)
    assert a["symbols"] == b["symbols"]
    # every atom at the same place of the crystal: b's positions are a's plus a lattice vector of a's cell
    frac = np.linalg.solve(ca.T, (np.array(b["positions"]) - np.array(a["positions"])).T).T
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-6)
    assert a["excited_index"] == b["excited_index"]
    assert b["min_image_A"] == pytest.approx(a["min_image_A"])
