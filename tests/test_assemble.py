"""Dataset assembly from structure records and a spectrum source."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from s2s.simulate.assemble import assemble, data_figures
from s2s.structures.records import StructureRecord

GRID = -1.0 + 0.1 * np.arange(200)


def _records(alpha_quartz):
    recs = []
    for k, scale in enumerate([1.0, 1.02, 0.98, 1.04]):
        s = alpha_quartz.copy()
        s.scale_lattice(s.volume * scale**3)
        recs.append(StructureRecord(id=f"q{k}", source="literature", citation="test", structure=s))
    # an isolated O (empty first shell) in a big Si-O cell: the O at the far corner has no neighbour
    lone = Structure(Lattice.cubic(8.0), ["Si", "O", "O"], [[0, 0, 0], [0.2, 0, 0], [0.5, 0.5, 0.5]])
    recs.append(StructureRecord(id="lone", source="literature", citation="test", structure=lone))
    return recs


def source(sid, site):
    if sid == "q3":
        return None, "not computed"
    if sid == "q2":
        return None, "simulator: gap collapsed"
    s = np.exp(-0.5 * ((GRID - 5) / 2) ** 2)
    return s / np.trapezoid(s, GRID), ""


def test_assemble_counts_and_split(alpha_quartz):
    ds, rep = assemble(_records(alpha_quartz), source, simulator="toy", settings={"a": 1}, test_fraction=0.4, seed=1)
    # q0, q1: one unique O each; q2/q3 skipped with reasons; "lone": 2 O sites, one of them isolated
    assert rep.n_structures_in == 5
    assert rep.skipped["not computed"] == 1 and rep.skipped["simulator: gap collapsed"] == 1
    assert rep.skipped["EmptyFirstShellError"] == 1
    ids = {r.structure_id for r in ds}
    assert ids == {"q0", "q1", "lone"}
    assert all(r.multiplicity == 6 for r in ds if r.structure_id.startswith("q"))
    assert {r.split for r in ds} == {"train", "test"}
    for sid in ids:
        assert len({r.split for r in ds if r.structure_id == sid}) == 1
    fig = data_figures(ds, rep)
    assert fig["n_sites"] == len(ds) == fig["n_train"] + fig["n_test"] and fig["n_structures"] == 3
    assert fig["n_sites_by_formula"] == {"SiO2": 3} and fig["sio2_site_fraction"] == 1.0


def test_data_figures_composition_mix(alpha_quartz):
    # a Si2O cell (O bridging two Si at 1.6 Å) next to two quartz cells: 1 of 3 sites is not SiO2
    si2o = Structure(Lattice.cubic(8.0), ["Si", "O", "Si"], [[0, 0, 0], [0.2, 0, 0], [0.4, 0, 0]])
    recs = _records(alpha_quartz)[:2] + [
        StructureRecord(id="s2o", source="literature", citation="test", structure=si2o)
    ]
    ds, rep = assemble(recs, source, simulator="toy", settings={}, test_fraction=0.4, seed=1)
    fig = data_figures(ds, rep)
    assert fig["n_sites_by_formula"] == {"SiO2": 2, "Si2O": 1}
    assert fig["sio2_site_fraction"] == round(2 / 3, 4)
    assert ds[0].environment.n_atoms == 15 and ds[0].simulator == "toy"


def test_assemble_needs_two_structures(alpha_quartz):
    with pytest.raises(ValueError, match="at least 2 structures"):
        assemble(_records(alpha_quartz)[:1], source, simulator="toy", settings={})
