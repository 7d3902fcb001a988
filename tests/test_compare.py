"""Simulator-vs-reference agreement helpers."""

import json

import numpy as np
import pytest

from s2s.simulate.compare import agreement, cosine, load_reference_sites, pearson

GRID = -1.0 + 0.1 * np.arange(200)


def test_pearson_cosine():
    a = np.exp(-0.5 * (GRID - 3) ** 2)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert cosine(a, 3 * a) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)


def test_load_reference_and_agreement(tmp_path, alpha_quartz):
    (tmp_path / "gpaw").mkdir()
    (tmp_path / "structures").mkdir()
    alpha_quartz.to(filename=str(tmp_path / "structures" / "q.cif"))
    spec = np.exp(-0.5 * (GRID - 3) ** 2)
    rec = {
        "structure_id": "q",
        "site_index": 3,
        "grid_spectrum": (spec / spec.sum()).tolist(),
        "sanity": {"passed": True},
    }
    (tmp_path / "gpaw" / "q__site3.json").write_text(json.dumps(rec))
    bad = dict(rec, site_index=4, sanity={"passed": False})
    (tmp_path / "gpaw" / "q__site4.json").write_text(json.dumps(bad))
    refs = load_reference_sites(tmp_path)
    assert [(r.structure_id, r.site_index) for r in refs] == [("q", 3)]
    assert len(refs[0].structure) == 9
    rows = agreement(refs, {("q", 3): refs[0].spectrum * 2})
    assert rows[0]["pearson"] == pytest.approx(1.0) and rows[0]["cosine"] == pytest.approx(1.0)
    assert agreement(refs, {("q", 3): None}) == []
    (tmp_path / "gpaw" / "q__site5.json").write_text(json.dumps({"structure_id": "q"}))
    with pytest.raises(ValueError, match="q__site5.json.*site_index"):
        load_reference_sites(tmp_path)
