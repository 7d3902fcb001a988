"""Tests of s2s.structures: records, literature polymorphs, frameworks, filter, user files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from s2s.structures.filters import bond_analysis, check_structure, deduplicate, hull_distances
from s2s.structures.frameworks import decorate_net, diamond_polytype, polytype_stackings
from s2s.structures.literature import ENTRIES, literature_records
from s2s.structures.records import Relaxation, StructureRecord, load_records, unique_o_sites
from s2s.structures.user import load_folder, load_mp_response, materials_project_records

warnings.filterwarnings("ignore")


@pytest.fixture(scope="module")
def lit() -> dict[str, StructureRecord]:
    return {r.id: r for r in literature_records()}


def quartz() -> Structure:
    """alpha-quartz from the AFLOW library bundled with pymatgen."""
    from s2s.structures.prototypes import aflow_records

    return next(r.structure for r in aflow_records() if r.notes["aflow_label"] == "A2B_hP9_152_c_a")


def test_record_round_trip(tmp_path):
    rec = StructureRecord(
        id="test-quartz",
        source="aflow-prototype",
        citation="AFLOW A2B_hP9_152_c_a",
        structure=quartz(),
        relaxation=Relaxation(
            method="CHGNet", version="chgnet 0.4.2", fmax=0.05, steps=12, converged=True, energy_per_atom=-8.3
        ),
        name="alpha quartz",
        notes={"seed": 3},
    )
    assert rec.formula == "SiO2" and rec.x == 2.0 and rec.spacegroup_number in (152, 154)
    path = rec.save(tmp_path)
    back = StructureRecord.load(path)
    assert back.to_dict() == rec.to_dict()
    assert back.relaxation.energy_per_atom == -8.3 and back.notes == {"seed": 3}
    assert [r.id for r in load_records(tmp_path)] == ["test-quartz"]
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file
    assert unique_o_sites(rec.structure) == 1


def test_record_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="source"):
        StructureRecord(id="x", source="nowhere", citation="", structure=quartz())
    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="Si-O"):
        StructureRecord(id="x", source="user", citation="", structure=nacl)
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        StructureRecord.load(bad)


def test_stishovite(lit):
    s = lit["lit-stishovite"].structure
    b = bond_analysis(s)
    assert np.all(b.si_cn_o == 6) and np.all(b.o_cn_si == 3)
    assert 1.75 <= b.si_o.min() and b.si_o.max() <= 1.82
    assert lit["lit-stishovite"].spacegroup == "P4_2/mnm"
    assert check_structure(s) == []


def test_coesite_tetrahedral(lit):
    s = lit["lit-coesite"].structure
    b = bond_analysis(s)
    assert len(s) == 48 and lit["lit-coesite"].spacegroup == "C2/c"
    assert np.all(b.si_cn_o == 4) and np.all(b.o_cn_si == 2)
    assert 1.59 <= b.si_o.min() and b.si_o.max() <= 1.63
    assert unique_o_sites(s) == 5


def test_other_literature_entries(lit):
    b = bond_analysis(lit["lit-moganite"].structure)
    assert np.all(b.si_cn_o == 4) and 1.58 < b.si_o.min() and b.si_o.max() < 1.65
    b = bond_analysis(lit["lit-seifertite"].structure)
    assert np.all(b.si_cn_o == 6)
    assert len(lit) == len(ENTRIES)
    for r in lit.values():
        assert r.citation and r.formula == "SiO2"


def test_framework_on_diamond():
    diamond = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    fw = decorate_net(diamond)
    assert fw is not None and fw.composition.reduced_formula == "SiO2"
    b = bond_analysis(fw)
    assert np.all(b.si_cn_o == 4) and np.all(b.o_cn_si == 2)
    assert np.allclose(b.si_o, 1.61, atol=1e-6)
    assert check_structure(fw) == []
    # a net that is not 4-connected is refused
    fcc = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.0), ["Si"], [[0, 0, 0]])
    assert decorate_net(fcc) is None


def test_polytypes():
    st = polytype_stackings(6)
    assert st[:3] == ["AB", "ABC", "ABAC"] and len(st) == 6  # 2H 3C 4H 5 6H(2)
    s = diamond_polytype("AB")
    assert decorate_net(s) is not None
    with pytest.raises(ValueError, match="stacking"):
        diamond_polytype("AAB")


def test_filter_rejects_broken_cell(lit):
    s = lit["lit-coesite"].structure.copy()
    assert check_structure(s) == []
    # push one O onto its Si neighbour and squash the cell: must fail, with reasons
    broken = s.copy()
    o = next(i for i, sp in enumerate(broken.species) if sp.symbol == "O")
    si = next(i for i, sp in enumerate(broken.species) if sp.symbol == "Si")
    broken.translate_sites([o], broken[si].frac_coords - broken[o].frac_coords + 0.02, to_unit_cell=True)
    why = check_structure(broken)
    assert why and any("overlap" in w or "Si-O" in w for w in why)
    squashed = s.copy()
    squashed.scale_lattice(s.volume * 0.5)
    assert check_structure(squashed)


def test_peroxide_only_when_allowed():
    # two SiO4-like units bridged by an O-O pair: Si-O-O-Si
    lat = Lattice.cubic(12.0)
    coords = [[0, 0, 0], [1.62, 0, 0], [3.10, 0, 0], [4.72, 0, 0]]
    s = Structure(lat, ["Si", "O", "O", "Si"], coords, coords_are_cartesian=True)
    b = bond_analysis(s)
    assert b.n_peroxide == 1
    assert any("O-O" in w for w in check_structure(s))
    assert not any("O-O" in w for w in check_structure(s, allow_peroxide=True))


def test_hull_and_dedup(lit):
    x = np.array([1 / 3, 0.5, 2 / 3, 2 / 3, 0.8])
    e = np.array([-7.0, -7.5, -8.3, -8.1, -7.0])
    d = hull_distances(x, e)
    assert d[0] == 0 and d[2] == 0 and d[4] == 0
    assert d[3] == pytest.approx(0.2) and d[1] > 0
    r1 = lit["lit-stishovite"]
    s2 = r1.structure.copy()
    s2.scale_lattice(r1.structure.volume * 1.02)
    s2.perturb(0.01)
    twin = StructureRecord(id="twin", source="user", citation="", structure=s2)
    kept, dropped = deduplicate([r1, twin, lit["lit-coesite"]])
    assert [r.id for r in kept] == ["lit-stishovite", "lit-coesite"] and dropped == {"twin": "lit-stishovite"}


def test_load_folder(tmp_path):
    quartz().to(filename=str(tmp_path / "quartz.cif"))
    quartz().to(filename=str(tmp_path / "POSCAR_q"), fmt="poscar")
    recs = load_folder(tmp_path)
    assert sorted(r.id for r in recs) == ["user-POSCAR_q", "user-quartz.cif"]
    assert all(r.source == "user" and r.formula == "SiO2" for r in recs)
    (tmp_path / "bad.cif").write_text("data_bad\n_cell_length_a oops\n")
    with pytest.raises(ValueError, match="bad.cif"):
        load_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no CIF/POSCAR"):
        load_folder(empty)


def test_materials_project_offline(tmp_path, monkeypatch):
    docs = [
        {"material_id": "mp-6930", "formula_pretty": "SiO2", "energy_above_hull": 0.0, "structure": quartz().as_dict()},
        {
            "material_id": "mp-22862",
            "formula_pretty": "NaCl",
            "energy_above_hull": 0.0,
            "structure": Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict(),
        },
    ]
    path = tmp_path / "mp_response.json"
    path.write_text(json.dumps({"data": docs, "meta": {}}))
    recs = load_mp_response(path)
    assert [r.id for r in recs] == ["mp-6930"] and recs[0].source == "materials-project"
    assert recs[0].notes["material_id"] == "mp-6930"
    (tmp_path / "bad.json").write_text('[{"formula_pretty": "SiO2"}]')
    with pytest.raises(ValueError, match="material_id"):
        load_mp_response(tmp_path / "bad.json")
    # without mp-api installed, or without a key, the online path raises a clear error
    try:
        import mp_api  # noqa: F401

        monkeypatch.delenv("MP_API_KEY", raising=False)
        with pytest.raises(ValueError, match="API key"):
            materials_project_records()
    except ImportError:
        with pytest.raises(ImportError, match="mp-api"):
            materials_project_records(api_key="dummy")


def test_composition_distances():
    from s2s.structures.filters import composition_distances

    d = composition_distances(np.array([2.0, 2.0, 1.0, 0.5]), np.array([-8.3, -8.1, -7.2, -6.5]))
    assert np.allclose(d, [0.0, 0.2, 0.0, 0.0])


def test_shipped_structures_are_consistent():
    """The committed data/structures set loads, ids are unique, generated crystals pass the filter."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "data" / "structures"
    if not any(folder.glob("*.json")):
        pytest.skip("no shipped structures")
    recs = load_records(folder)
    assert len({r.id for r in recs}) == len(recs)
    assert {"lit-stishovite", "lit-coesite", "lit-moganite", "lit-seifertite"} <= {r.id for r in recs}
    for r in recs:
        assert r.citation and 0.5 <= r.x <= 4.0
        if r.source == "generated":
            assert r.relaxation.method == "CHGNet" and r.relaxation.converged
            assert check_structure(r.structure, allow_peroxide=r.notes.get("strategy") == "peroxide") == []


def test_strategy_weights_parse_and_keep_the_default_seed_map():
    """The default mix still maps every logged attempt k to the strategy it had."""
    from pathlib import Path

    from s2s.structures.generate import STRATEGIES, STRATEGY_WEIGHTS, parse_weights

    assert parse_weights(None) == STRATEGY_WEIGHTS
    w = parse_weights("random_sio2=3,rattled=1")
    assert w[STRATEGIES.index("random_sio2")] == pytest.approx(0.75)
    assert w[STRATEGIES.index("oxidised")] == 0.0
    for bad in ("random_sio2", "nope=1", "random=x", "random=-1", "random=0"):
        with pytest.raises(ValueError, match="--weights"):
            parse_weights(bad)
    log = Path(__file__).parents[1] / "data" / "structures" / "generated" / "attempts.jsonl"
    checked = 0
    for line in log.read_text().splitlines():
        a = json.loads(line)
        if "strategy" not in a or "weights" in a or a.get("generator_version") != 2:
            continue  # (attempts logged before version 2 used another seed construction)
        rng = np.random.default_rng(a["seed"])
        assert STRATEGIES[rng.choice(len(STRATEGIES), p=np.asarray(STRATEGY_WEIGHTS))] == a["strategy"]
        checked += 1
    assert checked > 100


def test_one_stishovite_and_one_aflow_loader():
    """Stishovite and the AFLOW entries have one definition each (literature.py, prototypes.py)."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from s2s.structures.literature import stishovite
    from s2s.structures.prototypes import aflow_entry, aflow_original_citation, aflow_structure

    raw = Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.1773, 2.6655), ["Si", "O"], [[0, 0, 0], [0.3062, 0.3062, 0]]
    )
    s = stishovite(merge=False)
    assert s.species == raw.species and np.array_equal(s.frac_coords, raw.frac_coords)
    assert stishovite().composition.reduced_formula == "SiO2" and len(stishovite()) == 6
    q = aflow_structure("A2B_hP9_152_c_a")
    assert len(q) == 9 and q is not aflow_entry("A2B_hP9_152_c_a")["snl"].structure
    assert "(" in aflow_original_citation("A2B_hP9_152_c_a")
    with pytest.raises(RuntimeError, match="Si-O entries"):
        aflow_entry("no-such-label")
