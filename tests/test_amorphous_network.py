"""The ``network`` glass family (s2s.amorphous.network) on tiny cells: insertion, counts, seeds, checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from s2s.amorphous import network as nw

ROOT = Path(__file__).resolve().parents[1]


def diamond(reps: int = 1) -> Atoms:
    """Cubic diamond Si (8 atoms per cube): every Si four-fold, 2 bonds per Si."""
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat(reps)


def test_si_graph_of_diamond_has_two_bonds_per_si():
    i, j, D = nw.si_graph(diamond(), 2.85)
    assert len(i) == 16
    assert np.allclose(np.linalg.norm(D, axis=1), 5.43 * np.sqrt(3) / 4)
    assert np.all(np.bincount(np.concatenate([i, j]), minlength=8) == 4)


@pytest.mark.parametrize("x, n_o", [(0.25, 2), (0.5, 4), (0.75, 6), (1.0, 8), (1.5, 12), (2.0, 16)])
def test_oxygen_count_is_exact(x, n_o):
    atoms, info = nw.insert_oxygen(diamond(), x, seed=1)
    syms = atoms.get_chemical_symbols()
    assert syms.count("O") == n_o == info["n_o"]
    assert syms.count("Si") == 8
    assert len({tuple(sorted(b)) for b in info["o_bonds"]}) <= n_o  # one O per chosen bond
    assert len(info["o_bonds"]) == n_o


@pytest.mark.parametrize("rule", nw.RULES)
@pytest.mark.parametrize("x", [0.5, 1.25, 2.0])
def test_every_o_sits_between_two_si(x, rule):
    if rule == "dispersed" and x == 0.5:
        pytest.skip("dispersed at x = 0.5 needs a perfect matching: test_dispersed_rule_leaves_no_si_without_o")
    atoms, info = nw.insert_oxygen(diamond(2), x, seed=7, rule=rule)
    assert nw.o_between_two_si(atoms, info["o_bonds"], tol=1e-6)
    n_si = 64
    for k, (i, j) in enumerate(info["o_bonds"]):
        o = n_si + k
        assert atoms.get_distance(o, i, mic=True) == pytest.approx(1.62, abs=1e-6)
        assert atoms.get_distance(o, j, mic=True) == pytest.approx(1.62, abs=1e-6)
        # and no other atom is bonded to it: O two-fold (Si-O cutoff 2.0 Å)
        d = atoms.get_distances(o, list(range(len(atoms))), mic=True)
        assert np.count_nonzero(d[:n_si] < 2.0) == 2
    # the chosen bonds are distinct bonds of the parent graph
    bi, bj, _ = nw.si_graph(diamond(2), 2.85)
    graph = {(int(a), int(b)) for a, b in zip(bi, bj)}
    assert all((i, j) in graph for i, j in info["o_bonds"])
    assert len({tuple(b) for b in info["o_bonds"]}) == len(info["o_bonds"])


def test_expansion_gives_the_interpolated_volume():
    atoms, info = nw.insert_oxygen(diamond(), 1.0, seed=3)
    assert atoms.get_volume() / 8 == pytest.approx(nw.volume_per_si(1.0))
    assert nw.volume_per_si(2.0) == pytest.approx(nw.V_SI_SIO2)
    assert 60.0843 * 1.66053906660 / nw.volume_per_si(2.0) == pytest.approx(2.20)


def test_seed_reproduces_the_cell_and_another_seed_does_not():
    a1, i1 = nw.insert_oxygen(diamond(2), 1.0, seed=11)
    a2, i2 = nw.insert_oxygen(diamond(2), 1.0, seed=11)
    a3, i3 = nw.insert_oxygen(diamond(2), 1.0, seed=12)
    assert a1.get_chemical_symbols() == a2.get_chemical_symbols()
    assert np.array_equal(a1.get_positions(), a2.get_positions()) and i1["o_bonds"] == i2["o_bonds"]
    assert i1["o_bonds"] != i3["o_bonds"]
    assert nw.network_seed(1.0, 3) == nw.network_seed(1.0, 3) != nw.network_seed(1.0, 4)


def test_more_directions_keep_the_o_apart_and_expansion_fraction():
    """o_directions > 1 takes the sideways position farthest from placed atoms: shortest pair grows."""
    one, _ = nw.insert_oxygen(diamond(2), 2.0, seed=4, directions=1)
    many, info = nw.insert_oxygen(diamond(2), 2.0, seed=4, directions=12)
    short = lambda a: a.get_all_distances(mic=True)[np.triu_indices(len(a), 1)].min()  # noqa: E731
    assert short(many) > short(one)
    assert nw.o_between_two_si(many, info["o_bonds"], tol=1e-6)
    half, _ = nw.insert_oxygen(diamond(), 1.0, seed=3, expand=0.5)
    assert half.get_volume() == pytest.approx(0.5 * (diamond().get_volume() + 8 * nw.volume_per_si(1.0)))


def test_clustered_rule_puts_the_o_together():
    """Random mixture: the O of the clustered rule are closer to each other than random bonding's."""

    def mean_oo(rule):
        atoms, _ = nw.insert_oxygen(diamond(3), 0.25, seed=5, rule=rule)
        o = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "O"]
        d = atoms.get_all_distances(mic=True)[np.ix_(o, o)]
        return d[np.triu_indices(len(o), 1)].mean()

    assert mean_oo("clustered") < 0.8 * mean_oo("uniform")


def test_dispersed_rule_leaves_no_si_without_o(monkeypatch):
    """Random bonding conditioned on every Si having an O: no Si(Si4) unit, seeded; x < 0.5 is an error."""

    def o_per_si(info, n_si):
        return np.bincount(np.asarray(info["o_bonds"]).ravel(), minlength=n_si)

    for x, reps in ((1.0, 2), (0.5, 1)):  # x = 0.5 on 8 Si: a perfect matching of the diamond graph
        atoms, info = nw.insert_oxygen(diamond(reps), x, seed=3, rule="dispersed")
        assert o_per_si(info, 8 * reps**3).min() >= 1
        again, _ = nw.insert_oxygen(diamond(reps), x, seed=3, rule="dispersed")
        assert np.array_equal(atoms.positions, again.positions)
    # uniform draws leave Si without O at x = 1.0 on this parent for some seeds: the condition is not free
    assert min(o_per_si(nw.insert_oxygen(diamond(2), 1.0, seed=s)[1], 64).min() for s in range(20)) == 0
    with pytest.raises(ValueError, match="x >= 0.5"):
        nw.insert_oxygen(diamond(2), 0.25, seed=1, rule="dispersed")
    stretched, a, b = stretched_bond()  # a bridge is forced and counts towards covering its two Si
    bridges = nw.parent_defects(stretched, 2.85, 3.3)["bridges"]
    _, info = nw.insert_oxygen(stretched, 1.25, seed=2, rule="dispersed", expand=False, bridges=bridges)
    assert info["o_bonds"][0] == sorted([a, b]) and o_per_si(info, 64).min() >= 1
    # 64 Si, 32 O: a perfect matching is never drawn in 20 (the rule reads its own module's DISPERSED_TRIES)
    monkeypatch.setattr("s2s.amorphous.rules.DISPERSED_TRIES", 20)
    with pytest.raises(nw.NetworkRejected, match="Si\\(Si4\\)"):
        nw.insert_oxygen(diamond(2), 0.5, seed=1, rule="dispersed")

    def parent(n_si, seed, protocol):
        return diamond(2), {"cn_defects_after_cycle": [0], "cycles": 0, "defects": 0, "cpu_s": 0.0}

    monkeypatch.setattr(nw, "asi_parent", parent)
    with pytest.raises(ValueError, match="x >= 0.5"):  # refused before any parent is built
        nw.build_network_store(Path("unused"), [0.25, 1.0], 1, {}, rule="dispersed", progress=False)
    atoms, props = nw.make_network_cell(0.5, 0, 64, nw.NetworkProtocol(prerelax="none"), rule="dispersed")
    assert atoms is None and not props["ok"] and "Si(Si4)" in props["reason"]  # dropped with its reason


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 2.01, 3, float("nan"), "a"])
def test_bad_x_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="0 < x <= 2|must be a number"):
        nw.insert_oxygen(diamond(), bad, seed=1)
    with pytest.raises(ValueError, match="0 < x <= 2|must be a number"):
        nw.make_network_cell(bad, 0, 8, relax=lambda a: (a, {}))


def test_x_that_gives_a_fractional_o_count_is_an_error():
    with pytest.raises(ValueError, match="not an integer"):
        nw.insert_oxygen(diamond(), 0.3, seed=1)
    with pytest.raises(ValueError, match="only Si"):
        nw.insert_oxygen(Atoms("SiO", positions=[[0, 0, 0], [1.6, 0, 0]], cell=[5, 5, 5], pbc=True), 1.0, 1)
    with pytest.raises(ValueError, match="rule"):
        nw.insert_oxygen(diamond(), 1.0, seed=1, rule="layered")


def test_cell_checks_drop_under_coordination_and_close_pairs():
    good = diamond()
    assert nw.cell_checks(good)["ok"] and nw.cell_checks(good)["si_cn4_fraction"] == 1.0
    vacancy = diamond()
    del vacancy[0]
    chk = nw.cell_checks(vacancy)
    assert not chk["ok"] and chk["reason"] == "4 under-coordinated Si" and chk["si_cn_lt4"] == 4
    close = diamond()
    close.positions[1] = close.positions[0] + [0.7, 0.7, 0.0]
    chk = nw.cell_checks(close)
    assert not chk["ok"] and chk["reason"].startswith("pair at 0.99 A")
    atoms, _ = nw.insert_oxygen(diamond(), 2.0, seed=2)
    chk = nw.cell_checks(atoms)  # before relaxation: every Si has 4 O, every O 2 Si
    assert chk["ok"] and chk["o_cn2_fraction"] == 1.0


def test_store_build_resumes_and_reports_the_pass_rate(tmp_path, monkeypatch):
    """The store with a stand-in parent (diamond) and relaxation: a dropped cell has its reason."""
    calls = []

    def parent(n_si, seed, protocol):
        calls.append(seed)
        return diamond(), {"cn_defects_after_cycle": [0], "cycles": 0, "defects": 0, "cpu_s": 0.0}

    def relax(atoms):  # the x = 0.5 cell gets a vacancy-like defect: drop the first O's partner Si
        if atoms.get_chemical_symbols().count("O") == 4:
            atoms = atoms.copy()
            del atoms[0]
        return atoms, {"energy_eV_per_atom": -5.0, "steps": 1}

    keating = []  # the real Keating pre-relaxation, watched

    def watched_keating(*args, **kwargs):
        out, info = real_keating(*args, **kwargs)
        keating.append(info)
        return out, info

    real_keating = nw.keating_relax
    monkeypatch.setattr(nw, "asi_parent", parent)
    monkeypatch.setattr(nw, "keating_relax", watched_keating)
    counts = {0.5: (8, 4), 2.0: (8, 16)}
    man = nw.build_network_store(
        tmp_path, [0.5, 2.0], 2, counts, relax=relax, progress=False, log=lambda s: None, tag="t8"
    )
    rate = dict(man["pass_rate"]["2.00"])
    assert isinstance(rate.pop("cpu_s_per_cell"), float)  # a timer: its value is not checked
    # the Keating pre-relaxation runs for real on every insertion: it moves atoms and lowers its energy
    assert len(keating) == 2 + 8  # two cells at x = 2, and four tries for each of the two cells at x = 0.5
    assert all(k["steps"] > 0 and k["energy_eV"] < k["energy_eV_before"] for k in keating)
    assert rate == {"built": 2, "passed": 2, "insertions": 2, "pass_rate": 1.0}
    # the x = 0.5 stand-in relaxation fails every insertion: insert_tries (4) insertions per dropped cell
    assert man["pass_rate"]["0.50"]["passed"] == 0 and man["pass_rate"]["0.50"]["insertions"] == 8
    assert all(len(d["insert_rejected"]) == 3 for d in man["dropped"])
    assert all("under-coordinated Si" in d["reason"] for d in man["dropped"])
    assert (tmp_path / "dropped" / "SiO0.50_t8_c0.json").is_file()
    assert man["n_o_sites"] == {"2.00": 32}
    from s2s.amorphous.store import load_cells

    cells = load_cells(tmp_path)
    assert [c.properties["x"] for c in cells] == [2.0, 2.0]
    assert cells[0].properties["family"] == "network" and cells[0].properties["source"] == nw.SOURCE
    table = nw.cells_markdown(man).splitlines()
    assert table[0].startswith("| x | Si + O | cells built | passed |")
    row05 = next(r for r in table if r.startswith("| 0.50 |"))
    assert "| 8 + 4 | 2 | 0 | 0.00 |" in row05 and "c0: " in row05 and "c1: " in row05
    assert row05.count("under-coordinated Si") == 2
    row2 = next(r for r in table if r.startswith("| 2.00 |"))
    assert "| 2 | 2 | 1.00 | 2 |" in row2 and "| 32 | 144 | - |" in row2
    assert "| 0.00 | 8 |" in row05  # 4 insertions per dropped cell
    n_calls = len(calls)
    again = nw.build_network_store(
        tmp_path, [2.0], 2, {2.0: (8, 16)}, relax=relax, progress=False, log=lambda s: None, tag="t8"
    )
    assert len(calls) == n_calls  # resumed: nothing rebuilt, dropped cells included
    assert again["counts_si_o"] == {"0.50": [8, 4], "2.00": [8, 16]}  # the x of earlier calls are kept


def test_store_build_until_enough_cells_pass(tmp_path, monkeypatch):
    """``passing``: cells are tried in seed order until enough pass; ``n_cells`` caps the tries."""
    seen = []

    def parent(n_si, seed, protocol):
        seen.append(seed)
        return diamond(), {"cn_defects_after_cycle": [0], "cycles": 0, "defects": 0, "cpu_s": 0.0}

    def relax(atoms):  # x = 0.5 never passes; x = 2.0 always does
        if atoms.get_chemical_symbols().count("O") == 4:
            atoms = atoms.copy()
            del atoms[0]
        return atoms, {"energy_eV_per_atom": -5.0, "steps": 1}

    monkeypatch.setattr(nw, "asi_parent", parent)
    one_try = nw.NetworkProtocol(insert_tries=1)
    counts = {0.5: (8, 4), 2.0: (8, 16)}
    man = nw.build_network_store(
        tmp_path, [0.5, 2.0], 3, counts, one_try, relax=relax, progress=False, log=lambda s: None, tag="t8", passing=2
    )
    assert man["pass_rate"]["2.00"]["built"] == 2 and man["pass_rate"]["2.00"]["passed"] == 2  # stopped at 2
    assert man["pass_rate"]["0.50"]["built"] == 3 and man["pass_rate"]["0.50"]["passed"] == 0  # capped at 3
    n = len(seen)
    again = nw.build_network_store(
        tmp_path, [0.5, 2.0], 3, counts, one_try, relax=relax, progress=False, log=lambda s: None, tag="t8", passing=2
    )
    assert len(seen) == n and again["pass_rate"] == man["pass_rate"]  # resumed: nothing tried again
    more = nw.build_network_store(
        tmp_path, [2.0], 5, counts, one_try, relax=relax, progress=False, log=lambda s: None, tag="t8", passing=3
    )
    assert more["pass_rate"]["2.00"]["passed"] == 3 and len(seen) == n + 1  # one more cell, c2
    # only usable cells (e.g. SCF probe converged) count: c1 is not, so c3 and c4 are built for 4
    asked = []

    def usable(name, structure):
        asked.append(name)
        return not name.endswith("_c1")

    more = nw.build_network_store(
        tmp_path,
        [2.0],
        8,
        counts,
        one_try,
        relax=relax,
        progress=False,
        log=lambda s: None,
        tag="t8",
        passing=4,
        usable=usable,
    )
    assert more["pass_rate"]["2.00"]["passed"] == 5 and len(seen) == n + 3
    assert sorted(set(asked)) == [f"SiO2.00_t8_c{k}" for k in range(5)] and len(asked) == len(set(asked))
    # a second builder starting at c7 builds c7 only: c5 and c6 are left to the first one
    later = nw.build_network_store(
        tmp_path, [2.0], 8, counts, one_try, relax=relax, progress=False, log=lambda s: None, tag="t8", first_cell=7
    )
    assert len(seen) == n + 4 and sorted(e["cell_id"] for e in later["cells"] if e["x"] == 2.0) == [0, 1, 2, 3, 4, 7]
    with pytest.raises(ValueError, match="first_cell"):
        nw.build_network_store(tmp_path, [2.0], 8, counts, one_try, relax=relax, progress=False, first_cell=-1)


def test_two_builders_on_other_x_keep_each_others_cells(tmp_path, monkeypatch):
    """A second builder writing the store while the first one relaxes a cell: both sets of cells stay."""

    def parent(n_si, seed, protocol):
        return diamond(), {"cn_defects_after_cycle": [0], "cycles": 0, "defects": 0, "cpu_s": 0.0}

    def plain(atoms):
        return atoms, {"energy_eV_per_atom": -5.0, "steps": 1}

    other = []

    def relax(atoms):  # the first relaxation of builder 1 lets builder 2 build x = 1.0 meanwhile
        if not other:
            other.append(
                nw.build_network_store(
                    tmp_path, [1.0], 1, {1.0: (8, 8)}, relax=plain, progress=False, log=lambda s: None, tag="t8"
                )
            )
        return plain(atoms)

    monkeypatch.setattr(nw, "asi_parent", parent)
    man = nw.build_network_store(
        tmp_path, [2.0], 1, {2.0: (8, 16)}, relax=relax, progress=False, log=lambda s: None, tag="t8"
    )
    assert other and [e["name"] for e in other[0]["cells"]] == ["SiO1.00_t8_c0"]
    assert [e["name"] for e in man["cells"]] == ["SiO1.00_t8_c0", "SiO2.00_t8_c0"]
    assert set(man["pass_rate"]) == {"1.00", "2.00"}


def test_network_spectra_use_exactly_the_training_simulator():
    """Settings hash of the network family's spectra == the training set's (data/cache/xtb/<key>/settings.json)."""
    pytest.importorskip("tblite")
    from s2s.simulate.xtb import XtbSettings

    training = sorted((ROOT / "data" / "cache" / "xtb").glob("*/settings.json"))
    assert len(training) == 1, training
    recorded = json.loads(training[0].read_text())
    st = nw.spectra_settings()
    assert st.calc_key() == recorded["calc_key"] == training[0].parent.name
    assert st == XtbSettings()
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import build_amorphous

    args = build_amorphous.build_parser().parse_args(["spectra", "--family", "network"])
    assert build_amorphous.spectra_settings(args).calc_key() == recorded["calc_key"]
    assert build_amorphous.network_paths(args)["cache"] != build_amorphous.DEFAULT_CACHE
    assert (args.store_name, args.tag) == ("n72", "net72")
    mix = build_amorphous.build_parser().parse_args(["network", "--family", "network", "--rule", "clustered"])
    build_amorphous.network_paths(mix)
    assert (mix.store_name, mix.tag) == ("n72_mix", "netmix72")  # never the uniform cells' names
    disp = build_amorphous.build_parser().parse_args(["network", "--family", "network", "--rule", "dispersed"])
    build_amorphous.network_paths(disp)
    assert (disp.store_name, disp.tag) == ("n72_disp", "netdisp72")


def _lammps() -> bool:
    from s2s.amorphous.md import lammps_available

    return lammps_available()[0]


@pytest.mark.skipif(not _lammps(), reason="LAMMPS not loadable")
def test_asi_parent_is_seeded():
    p = nw.NetworkProtocol(melt_ps=1.0, quench_ps=2.0, anneal_ps=0.5, max_cycles=1)
    runs = []
    for _ in range(2):
        try:
            atoms, info = nw.asi_parent(16, 5, p)
            runs.append(atoms.get_positions())
        except nw.NetworkRejected as err:
            runs.append(err.info["cn_defects_after_cycle"])
    assert np.array_equal(np.asarray(runs[0]), np.asarray(runs[1]))


def stretched_bond(reps: int = 2, length: float = 3.0) -> tuple[Atoms, int, int]:
    """Diamond with one Si-Si bond pulled apart to ``length`` Å: its two Si are three-fold."""
    atoms = diamond(reps)
    i, j, D = nw.si_graph(atoms, 2.85)
    a, b, d = int(i[0]), int(j[0]), D[0]
    u = d / np.linalg.norm(d)
    shift = 0.5 * (length - np.linalg.norm(d))
    atoms.positions[a] -= shift * u
    atoms.positions[b] += shift * u
    return atoms, a, b


def test_parent_defects_pair_three_fold_si_into_bridges():
    atoms, a, b = stretched_bond()
    assert atoms.get_distance(a, b, mic=True) == pytest.approx(3.0)
    st = nw.parent_defects(atoms, 2.85, bridge_cutoff=3.3)
    assert st["defects"] == st["n_under"] == 2 and st["n_over"] == 0
    assert st["bridges"] == [sorted([a, b])] and st["unfixed"] == 0
    off = nw.parent_defects(atoms, 2.85, bridge_cutoff=0.0)
    assert off["bridges"] == [] and off["unfixed"] == 2
    far = nw.parent_defects(stretched_bond(length=3.6)[0], 2.85, bridge_cutoff=3.3)
    assert far["bridges"] == [] and far["unfixed"] == 2  # too far apart: not a bridge
    assert nw.parent_defects(diamond(2), 2.85, 3.3) == {
        "defects": 0,
        "n_under": 0,
        "n_over": 0,
        "bridges": [],
        "unfixed": 0,
    }


@pytest.mark.parametrize("rule", ["uniform", "clustered"])  # dispersed (x >= 0.5): test_dispersed_rule_...
def test_bridges_always_get_an_o_and_heal_the_three_fold_si(rule):
    atoms, a, b = stretched_bond()
    bridges = nw.parent_defects(atoms, 2.85, 3.3)["bridges"]
    for seed in range(3):
        out, info = nw.insert_oxygen(atoms, 0.25, seed=seed, rule=rule, expand=False, bridges=bridges, directions=12)
        assert out.get_chemical_symbols().count("O") == 16 == info["n_o"] and info["n_bridges"] == 1
        assert info["o_bonds"][0] == sorted([a, b])
        assert len({tuple(x) for x in info["o_bonds"]}) == 16  # the bridge is not drawn a second time
        assert nw.o_between_two_si(out, info["o_bonds"], tol=1e-6)
        chk = nw.cell_checks(out)  # unexpanded: a Si keeps its Si-Si bond to the O's partner too (CN 5)
        assert chk["ok"] and chk["si_cn_lt4"] == 0 and chk["o_cn2_fraction"] == 1.0
    # without the bridge the stretched bond (beyond the graph cutoff) never gets an O
    for seed in range(3):
        _, info = nw.insert_oxygen(atoms, 1.5, seed=seed, rule=rule, expand=False)
        assert sorted([a, b]) not in info["o_bonds"] and info["n_bridges"] == 0
    with pytest.raises(ValueError, match="bridges must be pairs"):
        nw.insert_oxygen(atoms, 0.25, seed=0, bridges=[[a, a]])
    with pytest.raises(ValueError, match="only 2 O"):
        nw.insert_oxygen(diamond(), 0.25, seed=0, bridges=[[0, 1], [2, 3], [4, 5]])


def test_spectra_summary_reports_scf_pass_rate_and_gap(tmp_path):
    """collect(): per x the SCF pass rate over the computed sites (pending ones left out) and the gap stats."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from s2s.amorphous.spectra import collect, compute
    from s2s.simulate.xtb import SiteResult, XtbSettings, structure_hash

    cells, entries = {}, {}
    for k, x in enumerate([0.5, 2.0]):
        atoms, info = nw.insert_oxygen(diamond(), x, seed=k, expand=False, directions=12)
        name = f"SiO{x:.2f}_t_c0"
        cells[name] = AseAtomsAdaptor.get_structure(atoms)
        entries[name] = {"name": name, "x": x, "cell_id": 0, "seed": k, "n_si": 8, "n_o": info["n_o"]}
    o_sites = {n: [i for i, s in enumerate(c.species) if s.symbol == "O"] for n, c in cells.items()}
    fail = {("SiO0.50_t_c0", o_sites["SiO0.50_t_c0"][0])}  # x = 0.5: 1 of 4 sites fails its SCF
    gap_of = {"SiO0.50_t_c0": 0.3, "SiO2.00_t_c0": 3.0}

    def fake(structure, site, settings, structure_id=""):
        ok = (structure_id, site) not in fail
        return SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=ok,
            gap=gap_of[structure_id] if ok else float("nan"),
            reason="" if ok else "scf failed: TBLiteRuntimeError: SCF not converged",
            sticks_e=np.array([0.0, 2.0]),
            sticks_w=np.array([1.0, 1.0]),
            seconds=0.1,
            meta={"structure_hash": structure_hash(structure)},
        )

    computed = [("SiO0.50_t_c0", s) for s in o_sites["SiO0.50_t_c0"]] + [
        ("SiO2.00_t_c0", s) for s in o_sites["SiO2.00_t_c0"][:4]
    ]
    pending = [("SiO2.00_t_c0", s) for s in o_sites["SiO2.00_t_c0"][4:6]]
    x_of = {n: e["x"] for n, e in entries.items()}
    compute(computed, cells, XtbSettings(), tmp_path, x_of, progress=False, simulate=fake)
    _, summary = collect(
        computed + pending, cells, entries, XtbSettings(), tmp_path, "xtb-test", compositions=[0.5, 1.0, 2.0]
    )
    assert summary["n_computed"] == {"0.50": 4, "1.00": 0, "2.00": 4}
    assert summary["scf_pass_rate"] == {"0.50": 0.75, "1.00": None, "2.00": 1.0}
    assert summary["n_pending"]["2.00"] == 2 and summary["n_failed"]["0.50"] == {"scf": 1}
    assert summary["gap_eV"]["0.50"]["n"] == 3 and summary["gap_eV"]["0.50"]["median"] == 0.3
    assert summary["gap_eV"]["0.50"]["below_0.5"] == 3 and summary["gap_eV"]["2.00"]["below_0.5"] == 0
    assert summary["gap_eV"]["2.00"]["min"] == 3.0 and summary["gap_eV"]["1.00"] == {"n": 0}


@pytest.mark.parametrize("x", [0.5, 1.0, 2.0])
def test_keating_prerelax_keeps_the_network_and_opens_the_si_o_si_angles(x):
    """The valence force field relaxes on the insertion's own bond list: no bond breaks or forms."""
    from s2s.amorphous import analysis as an

    atoms, info = nw.insert_oxygen(diamond(2), x, seed=3, directions=12)
    bi, bj, D = info["topology"]
    assert len(bi) == 128 + info["n_o"]  # 2 bonds per Si in diamond, one more per O
    assert np.allclose(np.linalg.norm(D[len(bi) - 2 * info["n_o"] :], axis=1), 1.62)  # the Si-O bonds
    out, kinfo = nw.keating_relax(atoms, info["topology"])
    assert kinfo["energy_eV"] < kinfo["energy_eV_before"] and kinfo["max_bond_dev_A"] < 0.2
    chk = nw.cell_checks(out)
    assert chk["ok"] and chk["si_cn4_fraction"] == 1.0 and chk["o_cn2_fraction"] == 1.0
    assert np.mean(an.bond_angles(out)) > 140.0  # Si-O-Si, from ~100 deg at insertion
    assert out.get_chemical_symbols() == atoms.get_chemical_symbols()
    with pytest.raises(ValueError, match="do not match"):
        nw.keating_relax(atoms, (bi, bj, D + 0.5))


def test_protocol_rejects_an_unknown_prerelax():
    with pytest.raises(ValueError, match="prerelax"):
        nw.NetworkProtocol(prerelax="lbfgs")


def test_store_protocol_match_tolerates_fields_added_at_their_default():
    p = nw.NetworkProtocol()
    old = {k: v for k, v in p.to_dict().items() if k != "keating_cell"}  # a store built before the field existed
    assert nw.same_protocol(None, p) and nw.same_protocol(p.to_dict(), p) and nw.same_protocol(old, p)
    assert not nw.same_protocol(old, nw.NetworkProtocol(keating_cell=False))
    assert not nw.same_protocol({**p.to_dict(), "quench_ps": 50.0}, p)
    assert not nw.same_protocol({**p.to_dict(), "retired_field": 1}, p)
    # a store built before insert_tries existed was built with one insertion (n72_v2), not the default 4
    before = {k: v for k, v in nw.NetworkProtocol(parent_tries=6).to_dict().items() if k != "insert_tries"}
    assert nw.same_protocol(before, nw.NetworkProtocol(parent_tries=6, insert_tries=1))
    assert not nw.same_protocol(before, nw.NetworkProtocol(parent_tries=6))
    assert not nw.same_protocol(before, nw.NetworkProtocol(insert_tries=1))  # parent_tries 6 -> 12


def test_cli_boolean_protocol_fields_parse_true_and_false():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import build_amorphous

    parse = build_amorphous.build_parser().parse_args
    assert parse(["network", "--net-keating-cell", "false"]).net_keating_cell is False
    assert parse(["network"]).net_keating_cell is nw.NetworkProtocol().keating_cell
    with pytest.raises(SystemExit):
        parse(["network", "--net-keating-cell", "maybe"])


def test_broken_bonds_names_the_stretched_bond():
    atoms, info = nw.insert_oxygen(diamond(2), 0.5, seed=3)
    assert nw.broken_bonds(atoms, info["topology"]) == []
    ti, tj, _ = info["topology"]
    a, b = int(ti[0]), int(tj[0])  # a Si-Si bond without an O (those come first)
    assert atoms.get_chemical_symbols()[b] == "Si"
    stretched = atoms.copy()
    stretched.set_distance(a, b, 3.0, fix=0.5, mic=True)
    out = nw.broken_bonds(stretched, info["topology"])
    assert [a, b] in [r[:2] for r in out]
    assert next(r[2] for r in out if r[:2] == [a, b]) == pytest.approx(3.0, abs=1e-3)


def test_insertion_seeds_are_distinct_and_the_first_is_the_old_one():
    seeds = {nw.insertion_seed(nw.network_seed(x, k), t) for x in (0.25, 1.0, 2.0) for k in range(10) for t in range(8)}
    assert len(seeds) == 3 * 10 * 8
    assert nw.insertion_seed(20272101, 0) == 20272102
    cells_and_parents = {
        nw.network_seed(x, k) + 100 * t for x in (0.25, 1.0, 2.0) for k in range(10) for t in range(20)
    }
    assert not seeds & cells_and_parents


@pytest.mark.parametrize("tries", [1, 3])
def test_insert_tries_retry_the_insertion_on_the_same_parent(monkeypatch, tries):
    """A relaxation that breaks a bond on the first insertion only: with insert_tries=1 the cell is
    dropped (reason and broken bond recorded), with 3 the second insertion passes on the same parent."""
    parents, relaxed = [], []

    def parent(n_si, seed, protocol):
        parents.append(seed)
        return diamond(2), {"cn_defects_after_cycle": [0], "cycles": 0, "defects": 0, "cpu_s": 0.0}

    def relax(atoms):
        relaxed.append(atoms.copy())
        if len(relaxed) == 1:  # break the bonds of Si 0: pull it away
            atoms = atoms.copy()
            atoms.positions[0] += [0.0, 0.0, 3.0]
        return atoms, {"energy_eV_per_atom": -5.0, "steps": 1}

    monkeypatch.setattr(nw, "asi_parent", parent)
    p = nw.NetworkProtocol(insert_tries=tries, prerelax="none")
    atoms, props = nw.make_network_cell(0.5, 0, 64, p, relax=relax)
    seed = nw.network_seed(0.5, 0)
    assert parents == [seed]  # one parent, whatever the number of insertions
    if tries == 1:
        assert atoms is None and not props["ok"] and props["reason"]
        assert props["insertion"]["seed"] == seed + 1 and props["insert_rejected"] == []
        assert any(b[0] == 0 for b in props["checks"]["broken_bonds"])
    else:
        assert atoms is not None and props["ok"] and len(relaxed) == 2
        assert props["insertion"]["seed"] == nw.insertion_seed(seed, 1)
        (rej,) = props["insert_rejected"]
        assert rej["seed"] == seed + 1 and rej["reason"] and any(b[0] == 0 for b in rej["broken_bonds"])
        assert props["checks"]["broken_bonds"] == []
        # the first insertion is the one of insert_tries=1
        first, _ = nw.insert_oxygen(diamond(2), 0.5, seed + 1, directions=p.o_directions)
        assert np.allclose(relaxed[0].positions, first.positions)


def test_probe_verdicts_by_si_si4_units():
    """si0_units counts the Si without an O neighbour; probe_by_si0 buckets the probe verdicts by it."""
    from s2s.amorphous.probe import probe_by_si0, probe_by_si0_markdown, si0_units

    cells, x_of, probes = {}, {}, {}
    for seed in range(6):
        atoms, info = nw.insert_oxygen(diamond(2), 1.0, seed=seed)  # expanded: Si-O 1.62 Å, Si-Si bonds kept
        no_o = int(np.count_nonzero(np.bincount(np.asarray(info["o_bonds"]).ravel(), minlength=64) == 0))
        assert si0_units(atoms) == no_o
        cells[f"c{seed}"], x_of[f"c{seed}"] = atoms, 1.0
        probes[f"c{seed}"] = {"ok": no_o == 0}
    disp, _ = nw.insert_oxygen(diamond(2), 1.0, seed=0, rule="dispersed")
    cells["d"], x_of["d"], probes["d"] = disp, 1.0, {"ok": True}
    assert si0_units(disp) == 0
    table = probe_by_si0(probes, {**cells, "unprobed": disp}, {**x_of, "unprobed": 1.0})
    row = table["1.00"]
    assert row["0"][0] == row["0"][1] >= 1 and row["1"][0] == row[">=2"][0] == 0
    assert sum(v[1] for v in row.values()) == 7  # the unprobed cell is not counted
    assert probe_by_si0_markdown(table).splitlines()[2].startswith("| 1.00 | ")
