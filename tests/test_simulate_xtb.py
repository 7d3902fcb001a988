"""Open xTB O K-edge simulator and its cached build (cheap settings: 36-atom quartz cells)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tblite")

from s2s.simulate import build as B  # noqa: E402
from s2s.simulate.xtb import (  # noqa: E402
    SiteResult,
    XtbSettings,
    broaden,
    finalize,
    make_supercell,
    simulate_site,
    simulate_structure_ground_state,
    supercell_multiples,
)
from s2s.spectrum import GRID  # noqa: E402

# 2x2x1 quartz supercell (36 atoms, < 1 s per SCF): cheap, not converged, fine for tests.
CHEAP = XtbSettings(variant="ground", min_length=5.0, supercell="diagonal")


def _o_sites(structure):
    return [i for i, s in enumerate(structure) if s.specie.symbol == "O"]


def _check_spectrum(y):
    assert y.shape == (200,)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    assert np.trapezoid(y, GRID) == pytest.approx(1.0, abs=1e-9)


# -- settings ----------------------------------------------------------------------


def test_settings_hash_stable_and_distinct():
    a = XtbSettings()
    assert a.calc_key() == XtbSettings().calc_key()
    assert a.full_hash() == XtbSettings().full_hash()
    assert len(a.calc_key()) == 12
    # value fixed across runs/processes (hash of sorted JSON, not Python's hash())
    assert XtbSettings(variant="z+1").calc_key() == XtbSettings(variant="z+1", charge=0).calc_key()
    keys = {
        XtbSettings().calc_key(),
        XtbSettings(variant="z+1", charge=1).calc_key(),
        XtbSettings(variant="ground").calc_key(),
        XtbSettings(min_length=12).calc_key(),
        XtbSettings(method="GFN2-xTB").calc_key(),
        XtbSettings(temperature=1000).calc_key(),
        XtbSettings(projection="lowdin").calc_key(),
    }
    assert len(keys) == 7
    # broadening does not change what is computed, only the full hash
    b = XtbSettings(gauss_fwhm=2.0)
    assert b.calc_key() == a.calc_key() and b.full_hash() != a.full_hash()
    assert XtbSettings.from_dict(b.to_dict()) == b


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="variant"):
        XtbSettings(variant="zplus1")
    with pytest.raises(ValueError, match="min_length"):
        XtbSettings(min_length=0)
    with pytest.raises(ValueError, match="onset"):
        XtbSettings(onset="fermi")


# -- pure pieces -------------------------------------------------------------------


def test_supercell_multiples_and_order(alpha_quartz):
    assert supercell_multiples((4.9, 4.9, 5.4), 10.0) == (3, 3, 2)
    assert supercell_multiples((4.9, 4.9, 5.4), 5.0) == (2, 2, 1)
    assert supercell_multiples((12.0, 10.0, 9.99), 10.0) == (1, 1, 2)
    numbers, pos, lat = make_supercell(alpha_quartz, (2, 1, 1))
    n = len(alpha_quartz)
    assert len(numbers) == 2 * n
    np.testing.assert_allclose(pos[:n], alpha_quartz.cart_coords)  # original atoms keep their index
    np.testing.assert_allclose(pos[n:], alpha_quartz.cart_coords + alpha_quartz.lattice.matrix[0])
    np.testing.assert_allclose(lat[0], 2 * alpha_quartz.lattice.matrix[0])


def test_min_image_supercell(alpha_quartz):
    from s2s.simulate.supercell import shortest_lattice_vector
    from s2s.simulate.xtb import supercell_matrix

    st = XtbSettings(min_length=10.0)
    P = supercell_matrix(alpha_quartz, st)
    n_cells = round(abs(np.linalg.det(P)))
    assert n_cells == 8  # 72 atoms; the diagonal rule needs (3, 3, 2) = 18 cells
    assert np.prod(supercell_matrix(alpha_quartz, st.with_(supercell="diagonal")).diagonal()) == 18
    numbers, pos, lat = make_supercell(alpha_quartz, P)
    assert shortest_lattice_vector(lat) >= 10.0
    n = len(alpha_quartz)
    np.testing.assert_allclose(pos[:n], alpha_quartz.cart_coords)
    # every supercell atom is a lattice translate of its parent, and no two atoms coincide
    frac_parent = pos @ np.linalg.inv(alpha_quartz.lattice.matrix)
    d = frac_parent - np.tile(alpha_quartz.frac_coords, (n_cells, 1))
    np.testing.assert_allclose(d, np.round(d), atol=1e-8)
    frac_sup = (pos @ np.linalg.inv(lat)) % 1.0
    diff = frac_sup[:, None] - frac_sup[None]
    diff -= np.round(diff)
    dist = np.linalg.norm(diff @ lat, axis=-1) + np.eye(len(pos)) * 99
    assert dist.min() > 1.0


def test_broaden_area_and_peak():
    x = np.linspace(-20, 40, 6001)
    y = broaden(np.array([5.0]), np.array([2.0]), x, gauss_fwhm=1.0, lorentz_fwhm=0.2)
    assert np.trapezoid(y, x) == pytest.approx(2.0, rel=0.02)  # Lorentz tails lose a little
    assert x[np.argmax(y)] == pytest.approx(5.0, abs=0.01)
    g = broaden(np.array([0.0]), np.array([1.0]), np.array([0.0, 0.5]), gauss_fwhm=1.0, lorentz_fwhm=0.0)
    assert g[1] / g[0] == pytest.approx(0.5, rel=1e-6)  # FWHM really is the full width at half maximum


def test_rejects_non_si_o(alpha_quartz):
    s = alpha_quartz.copy()
    s.replace(0, "Ge")
    with pytest.raises(ValueError, match="only Si-O"):
        simulate_site(s, _o_sites(s)[0], CHEAP)
    with pytest.raises(ValueError, match="not an O site"):
        simulate_site(alpha_quartz, 0, CHEAP)


# -- the simulator -----------------------------------------------------------------


def test_ground_state_quartz_all_sites_one_scf(alpha_quartz):
    res = simulate_structure_ground_state(alpha_quartz, CHEAP, "quartz")
    assert sorted(res) == _o_sites(alpha_quartz)
    first = res[_o_sites(alpha_quartz)[0]]
    assert first.ok, first.reason
    assert first.n_atoms == 36 and np.array_equal(first.supercell, np.diag([2, 2, 1]))
    assert 5.0 < first.gap < 15.0  # quartz is a wide-gap insulator
    for r in res.values():
        _check_spectrum(r.spectrum)
        assert r.meta["shared_scf"] == 6
        # all six O of quartz are symmetry-equivalent
        np.testing.assert_allclose(r.spectrum, first.spectrum, atol=1e-3 * first.spectrum.max())
    # weights are empty O-p fractions: nothing below the lowest empty level
    assert np.all(first.sticks_w[first.sticks_e < -1e-6] < 1e-6)
    assert first.sticks_e[np.argmax(first.sticks_w > 0)] == pytest.approx(0.0, abs=1e-6)


def test_z_plus_1_quartz_site(alpha_quartz):
    site = _o_sites(alpha_quartz)[0]
    st = CHEAP.with_(variant="z+1", charge=1)  # closed shell
    r = simulate_site(alpha_quartz, site, st, "quartz")
    assert r.ok, r.reason
    _check_spectrum(r.spectrum)
    g = simulate_site(alpha_quartz, site, CHEAP, "quartz")
    # the core hole pulls O-p weight towards the onset: different spectrum, smaller gap
    assert r.gap < g.gap
    assert np.corrcoef(r.spectrum, g.spectrum)[0, 1] < 0.99
    # default charge 0: the excited electron half-fills the lowest empty level (empty fraction 1/2)
    q0 = simulate_site(alpha_quartz, site, CHEAP.with_(variant="z+1"), "quartz")
    assert q0.ok, q0.reason
    _check_spectrum(q0.spectrum)
    assert q0.sticks_e[0] == pytest.approx(0.0, abs=1e-9)
    assert not np.allclose(q0.spectrum, r.spectrum)
    # JSON round trip keeps the sticks; re-broadening gives the same spectrum
    back = finalize(SiteResult.from_json_dict(json.loads(json.dumps(r.to_json_dict()))), st)
    np.testing.assert_allclose(back.spectrum, r.spectrum, atol=1e-4 * r.spectrum.max())


def test_failure_paths_record_reason(alpha_quartz):
    r = simulate_site(alpha_quartz, _o_sites(alpha_quartz)[0], CHEAP.with_(max_iter=1), "quartz")
    assert not r.ok and "scf failed" in r.reason and r.spectrum is None
    assert r.to_json_dict()["ok"] is False
    ok = simulate_site(alpha_quartz, _o_sites(alpha_quartz)[0], CHEAP, "quartz")
    flagged = finalize(ok, CHEAP.with_(min_gap=50.0))
    assert not flagged.ok and flagged.reason.startswith("gap collapse") and flagged.spectrum is None
    # the gap check is redone on load: the cached record stays a successful calculation
    assert flagged.to_json_dict()["ok"] is True


# -- the cached build --------------------------------------------------------------


def test_build_cache_round_trip_and_resume(alpha_quartz, tmp_path, monkeypatch):
    calls = []
    real = B.simulate_structure_ground_state

    def counting(*a, **k):
        calls.append(k.get("sites"))
        return real(*a, **k)

    monkeypatch.setattr(B, "simulate_structure_ground_state", counting)
    items = [("quartz", alpha_quartz)]
    rep = B.build(items, CHEAP, tmp_path, workers=1, progress=False)
    assert len(calls) == 1 and rep.computed == 1 and rep.cached == 0  # one unique O site
    site = B.default_sites(alpha_quartz, "quartz")[0]
    path = tmp_path / CHEAP.calc_key() / "quartz" / f"site{site}.json"
    assert path.is_file() and not list(path.parent.glob(".*tmp"))
    assert json.loads((tmp_path / CHEAP.calc_key() / "settings.json").read_text())["calc_key"] == CHEAP.calc_key()

    rep2 = B.build(items, CHEAP, tmp_path, workers=1, progress=False)
    assert len(calls) == 1 and rep2.computed == 0 and rep2.cached == 1  # resume: nothing recomputed

    loaded = B.load_site(tmp_path, CHEAP, "quartz", site)
    _check_spectrum(loaded.spectrum)
    direct = real(alpha_quartz, CHEAP, "quartz", sites=[site])[site]
    np.testing.assert_allclose(loaded.spectrum, direct.spectrum, atol=1e-4 * direct.spectrum.max())
    # other broadening: same cache entry, different spectrum, no new calculation
    wide = B.load_site(tmp_path, CHEAP.with_(gauss_fwhm=3.0), "quartz", site)
    assert not np.allclose(wide.spectrum, loaded.spectrum)
    assert B.load_site(tmp_path, CHEAP.with_(min_length=6.0), "quartz", site) is None


def test_build_recomputes_a_changed_structure(alpha_quartz, tmp_path, monkeypatch):
    calls = []
    real = B.simulate_structure_ground_state

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(B, "simulate_structure_ground_state", counting)
    B.build([("q", alpha_quartz)], CHEAP, tmp_path, progress=False)
    site = B.default_sites(alpha_quartz, "q")[0]
    path = tmp_path / CHEAP.calc_key() / "q" / f"site{site}.json"
    # a record written before hashes existed is adopted, not recomputed
    d = json.loads(path.read_text())
    d["meta"].pop("structure_hash")
    path.write_text(json.dumps(d))
    rep = B.build([("q", alpha_quartz)], CHEAP, tmp_path, progress=False)
    assert len(calls) == 1 and rep.cached == 1
    assert json.loads(path.read_text())["meta"]["structure_hash"]
    # same id, different structure: stale, recomputed
    strained = alpha_quartz.copy()
    strained.scale_lattice(alpha_quartz.volume * 1.05)
    assert B.load_site(tmp_path, CHEAP, "q", site, strained) is None
    assert B.load_site(tmp_path, CHEAP, "q", site, alpha_quartz) is not None
    rep = B.build([("q", strained)], CHEAP, tmp_path, progress=False)
    assert len(calls) == 2 and rep.stale == 1 and rep.computed == 1
    assert B.load_site(tmp_path, CHEAP, "q", site, strained) is not None


def test_build_caches_failures_and_retries_on_request(alpha_quartz, tmp_path, monkeypatch):
    calls = []

    def failing(structure, site, settings, structure_id=""):
        calls.append(site)
        return SiteResult(structure_id=structure_id, site_index=site, ok=False, reason="scf failed: test")

    monkeypatch.setattr(B, "simulate_site", failing)
    st = CHEAP.with_(variant="z+1")
    items = [("quartz", alpha_quartz)]
    rep = B.build(items, st, tmp_path, workers=1, progress=False)
    assert rep.failed == 1 and rep.failures[0][2] == "scf failed: test" and len(calls) == 1
    rep = B.build(items, st, tmp_path, workers=1, progress=False)
    assert len(calls) == 1 and rep.cached == 1 and rep.failed == 1  # failure not retried
    rep = B.build(items, st, tmp_path, workers=1, progress=False, retry_failed=True)
    assert len(calls) == 2 and rep.computed == 1
    r = B.load_site(tmp_path, st, "quartz", calls[0])
    assert not r.ok and r.reason == "scf failed: test"


def test_build_with_injected_executor(alpha_quartz, tmp_path):
    """Any concurrent.futures.Executor works (a Dask Client.get_executor() is used the same way)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as ex:
        rep = B.build([("q1", alpha_quartz)], CHEAP, tmp_path, executor=ex, progress=False)
    assert rep.computed == 1 and rep.failed == 0


def test_bad_ids_and_inputs(alpha_quartz, tmp_path):
    with pytest.raises(ValueError, match="file-name safe"):
        B.build([("../evil", alpha_quartz)], CHEAP, tmp_path, progress=False)
    with pytest.raises(ValueError, match="twice"):
        B.build([("a", alpha_quartz), ("a", alpha_quartz)], CHEAP, tmp_path, progress=False)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        B.read_structures(tmp_path / "s")


def test_read_structures_formats(alpha_quartz, tmp_path):
    d = tmp_path / "structs"
    d.mkdir()
    (d / "rec.json").write_text(json.dumps({"id": "lit-quartz", "structure": alpha_quartz.as_dict()}))
    (d / "plain.json").write_text(json.dumps(alpha_quartz.as_dict()))
    alpha_quartz.to(filename=str(d / "q.cif"))
    items = dict(B.read_structures(d))
    assert set(items) == {"lit-quartz", "plain", "q"}
    assert all(len(s) == 9 for s in items.values())
