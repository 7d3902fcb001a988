"""The dataset-site reference store and its resumable build (GPAW itself replaced by a fake run_site)."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import types

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from s2s.simulate import reference_build as rb
from s2s.simulate import reference_sites as rs
from s2s.simulate.gpaw_ref import GPAWSettings, broaden_to_grid
from s2s.simulate.supercell import grid_points
from s2s.spectrum import GRID


def _structure(a: float = 5.0) -> Structure:
    return Structure(Lattice.cubic(a), ["Si", "O", "O"], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]])


def _record(sid: str, k: int, settings: GPAWSettings, passed: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    e = np.sort(rng.uniform(0, 60, 300))
    e[0] = 0.0
    w = rng.uniform(0, 1, 300)
    return {
        "structure_id": sid,
        "site_index": k,
        "energies_eV": e.tolist(),
        "intensity": w.tolist(),
        "grid_spectrum": broaden_to_grid(e, w, settings.fwhm).tolist() if passed else None,
        "sanity": {"passed": passed, "gap_eV": 1.5, "message": "ok" if passed else "2 partially occupied band(s)"},
        "settings": {"supercell_atoms": 48, "calc_key": settings.calc_key()},
        "wall_time_s": {"total": 12.0},
        "cpu_time_s": 11.0,
    }


def test_store_round_trip_keeps_spectra_and_sticks_below_40_eV(tmp_path):
    st = GPAWSettings(mpi_procs=1)
    store = rs.ReferenceStore(tmp_path / "store")
    recs = [_record("quartz", k, st, seed=k) for k in (3, 5)]
    for r in recs:
        store.add(rs.site_from_record(r, "abc"), st)
    back = store.read_structure("quartz")
    assert [s.site_index for s in back] == [3, 5]
    for s, r in zip(back, recs):
        np.testing.assert_allclose(s.grid_spectrum, r["grid_spectrum"], rtol=1e-6, atol=1e-7)
        e, w = np.asarray(r["energies_eV"]), np.asarray(r["intensity"])
        me, mw = rs.merge_sticks(e[e <= rs.STICK_MAX_EV], w[e <= rs.STICK_MAX_EV])
        np.testing.assert_allclose(s.stick_energy, me, rtol=1e-6)
        np.testing.assert_allclose(s.stick_intensity, mw, rtol=1e-6)
        assert s.stick_intensity.shape == s.stick_energy.shape
        assert s.calc_key == st.calc_key() and s.structure_hash == "abc" and s.supercell_atoms == 48
    assert json.loads((tmp_path / "store" / "settings.json").read_text())[st.calc_key()]["h"] == st.h
    # replacing a site keeps one row per site
    store.add(rs.site_from_record(_record("quartz", 3, st, seed=9), "abc"), st)
    assert sorted(s.site_index for s in store.read_structure("quartz")) == [3, 5]
    assert (tmp_path / "store" / "quartz.npz").stat().st_size < 8 * 1024  # a few KB per site


def test_store_names_a_damaged_file(tmp_path):
    store = rs.ReferenceStore(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(rs.ReferenceStoreError, match="bad.npz"):
        store.read_structure("bad")


def test_failed_sanity_check_is_not_stored():
    st = GPAWSettings(mpi_procs=1)
    with pytest.raises(ValueError, match="sanity check failed: 2 partially"):
        rs.site_from_record(_record("q", 1, st, passed=False), "abc")


def test_calc_key_ignores_how_a_site_runs_but_not_what_it_computes():
    base = GPAWSettings()
    assert base.calc_key() == GPAWSettings(mpi_procs=1, nice=0, fwhm=0.8).calc_key()
    assert base.calc_key() != GPAWSettings(h=0.25).calc_key()
    assert base.calc_key() != GPAWSettings(min_image=8.0).calc_key()


def test_grid_points_match_gpaws_rule_and_divisor():
    cell = np.diag([10.0, 7.3, 12.1])
    # GPAW's h2gpts: N = max(4, int(L / h / 4 + 0.5) * 4) with L the lattice-plane spacing
    assert grid_points(cell, 0.2) == [48, 36, 60]
    assert all(n % 8 == 0 for n in grid_points(cell, 0.2, divisor=8))
    # a sheared cell: the plane spacing (not the vector length) sets the grid
    sheared = np.array([[10.0, 0, 0], [5.0, 8.66, 0], [0, 0, 9.0]])
    assert grid_points(sheared, 0.2)[0] == int(8.66 / 0.2 / 4 + 0.5) * 4


def test_plan_order_test_then_validation_then_silica_then_rest_small_cells_first():
    R = types.SimpleNamespace
    recs = [
        R(structure_id="big_sio2", site_index=0, x=2.0),
        R(structure_id="small_sio3", site_index=1, x=3.0),
        R(structure_id="small_sio2", site_index=2, x=2.0),
        R(structure_id="t", site_index=0, x=2.0),
        R(structure_id="v", site_index=4, x=1.5),
    ]
    atoms = {"big_sio2": 144, "small_sio3": 30, "small_sio2": 40, "t": 200, "v": 90}
    plan = rb.plan_order(recs, ["train", "train", "train", "test", "validation"], atoms.__getitem__)
    assert [(p.structure_id, p.group) for p in plan] == [
        ("t", "test"),
        ("v", "validation"),
        ("small_sio2", "train-SiOx<=2"),
        ("big_sio2", "train-SiOx<=2"),
        ("small_sio3", "train-other"),
    ]
    with pytest.raises(ValueError, match="group 'fit'"):
        rb.plan_order(recs[:1], ["fit"], atoms.__getitem__)


class _FakeGPAW:
    """run_site stand-in: records each call; site 'boom' raises, site index 7 fails its sanity check."""

    def __init__(self):
        self.calls = []

    def __call__(self, structure, sid, k, settings, workdir=None):
        self.calls.append((sid, k))
        if sid == "boom":
            raise RuntimeError("GPAW worker failed (rc=1): SCF did not converge in 300 iterations")
        if sid == "killed":
            raise rb.WorkerInterrupted("GPAW worker stopped by signal 15")
        return _record(sid, k, settings, passed=(k != 7), seed=k)


@pytest.mark.parametrize("use_executor", [False, True])
def test_build_is_resumable_and_names_every_failure(tmp_path, monkeypatch, use_executor):
    fake = _FakeGPAW()
    monkeypatch.setattr(rb, "run_site", fake)
    structures = {"a": _structure(5.0), "boom": _structure(5.1), "c": _structure(5.2)}
    plan = [
        rb.PlannedSite("a", 1, "test", 3),
        rb.PlannedSite("a", 7, "test", 3),
        rb.PlannedSite("boom", 1, "validation", 3),
        rb.PlannedSite("c", 2, "train-other", 3),
    ]
    store = rs.ReferenceStore(tmp_path)
    st = GPAWSettings(mpi_procs=1)
    seen = []
    ex = cf.ThreadPoolExecutor(1) if use_executor else None
    try:
        rep = rb.build(
            plan[:3],
            structures.__getitem__,
            store,
            st,
            executor=ex,
            progress=False,
            on_result=lambda r: seen.append(r.computed + r.failed),
        )
    finally:
        if ex is not None:
            ex.shutdown()
    assert (rep.computed, rep.failed) == (1, 2) and seen == [1, 2, 3]
    fails = store.failures()
    assert set(fails) == {"a:7", "boom:1"}
    assert "sanity check failed" in fails["a:7"]["reason"] and "SCF did not converge" in fails["boom:1"]["reason"]
    # resume: done and failed sites are skipped, the new one is computed
    fake.calls.clear()
    rep2 = rb.build(plan, structures.__getitem__, store, st, progress=False)
    assert fake.calls == [("c", 2)]
    assert (rep2.stored, rep2.failed_before, rep2.computed) == (1, 2, 1)
    # retry_failed recomputes only the failures
    fake.calls.clear()
    rb.build(plan, structures.__getitem__, store, st, progress=False, retry_failed=True)
    assert sorted(fake.calls) == [("a", 7), ("boom", 1)]
    # other settings: every site is computed again (the store keeps one spectrum per site)
    fake.calls.clear()
    rb.build(plan[:1], structures.__getitem__, store, dataclasses.replace(st, h=0.25), progress=False)
    assert fake.calls == [("a", 1)]
    assert set(store.settings()) == {st.calc_key(), dataclasses.replace(st, h=0.25).calc_key()}


def test_build_stops_starting_sites_after_the_deadline(tmp_path, monkeypatch):
    fake = _FakeGPAW()
    monkeypatch.setattr(rb, "run_site", fake)
    plan = [rb.PlannedSite("a", k, "test", 3) for k in (1, 2)]
    rep = rb.build(
        plan,
        lambda sid: _structure(),
        rs.ReferenceStore(tmp_path),
        GPAWSettings(mpi_procs=1),
        deadline=0.0,
        progress=False,
    )
    assert rep.computed == 0 and fake.calls == []
    assert GRID.size == 200


def test_with_reference_adds_a_reference_record_per_computed_site_and_round_trips(tmp_path):
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import Environment
    from s2s.simulate.xtb_settings import structure_hash

    s = _structure()
    env = Environment(species=np.array([1, 0]), coords=np.array([[0, 0, 0], [1.6, 0, 0]]), shell=np.array([0, 1]))
    spec = np.ones(GRID.size) / np.trapezoid(np.ones(GRID.size), GRID)
    recs = [
        SiteRecord(
            spectrum=spec,
            environment=env,
            structure_id=sid,
            site_index=1,
            formula="SiO2",
            simulator="xtb-gfn1",
            split=split,
        )
        for sid, split in (("a", "train"), ("b", "test"))
    ]
    ds = Dataset.from_records(recs, {"a": s, "b": s})
    st = GPAWSettings(mpi_procs=1)
    store = rs.ReferenceStore(tmp_path / "store")
    store.add(rs.site_from_record(_record("a", 1, st), structure_hash(s)), st)
    store.add(rs.site_from_record(_record("b", 1, st), "another-structure"), st)  # stale: left out, named
    with pytest.warns(UserWarning, match="b site 1 was computed for another structure"):
        both = rs.with_reference(ds, store, calc_key=None)
    assert len(rs.with_reference(ds, store).fidelity("reference")) == 0  # default: the build's settings only
    with pytest.warns(UserWarning, match="computed for another structure"):
        assert len(rs.with_reference(ds, store, calc_key=st.calc_key()).fidelity("reference")) == 1
    assert [r.fidelity for r in both] == ["xtb", "xtb", "reference"]
    ref = both.fidelity("reference")
    assert len(ref) == 1 and ref[0].key == ("a", 1) and ref[0].split == "train"
    assert ref[0].settings["calc_key"] == st.calc_key() and ref[0].settings["h"] == st.h
    np.testing.assert_allclose(ref[0].spectrum, store.read_structure("a")[0].grid_spectrum, rtol=1e-7)
    back = Dataset.load(both.save(tmp_path / "both.h5"))  # both fidelities of one site in one file
    assert sorted(r.fidelity for r in back) == ["reference", "xtb", "xtb"]
    with pytest.raises(ValueError, match="expected one of"):
        both.fidelity("gpaw")


def test_held_out_site_is_planned_with_the_tests_and_never_in_a_training_split(tmp_path):
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import Environment
    from s2s.simulate.xtb_settings import structure_hash

    (sid, k), _ = next(iter(rs.HELD_OUT.items()))
    R = types.SimpleNamespace
    plan = rb.plan_order(
        [R(structure_id="z", site_index=0, x=2.0), R(structure_id=sid, site_index=k, x=2.0)],
        ["test", "train"],
        lambda s: 10,
    )
    assert {p.structure_id: p.group for p in plan}[sid] == "test"
    s = _structure()
    env = Environment(species=np.array([1, 0]), coords=np.array([[0, 0, 0], [1.6, 0, 0]]), shell=np.array([0, 1]))
    spec = np.ones(GRID.size) / np.trapezoid(np.ones(GRID.size), GRID)
    ds = Dataset.from_records(
        [
            SiteRecord(
                spectrum=spec, environment=env, structure_id=sid, site_index=k, simulator="xtb-gfn1", split="train"
            )
        ],
        {sid: s},
    )
    st = GPAWSettings(mpi_procs=1)
    store = rs.ReferenceStore(tmp_path)
    store.add(rs.site_from_record(_record(sid, k, st), structure_hash(s)), st)
    ref = rs.with_reference(ds, store, calc_key=None).fidelity("reference")
    assert len(ref) == 1 and ref[0].split == "" and "notebook 07" in ref[0].meta["held_out"]
    assert len(rs.with_reference(ds, store, calc_key=None).fidelity("reference").train) == 0


def _add_failures(root: str, tag: str, n: int) -> None:
    store = rs.ReferenceStore(root)
    for i in range(n):
        store.add_failure(f"{tag}{i}", 1, "SCF did not converge", "key", 1.0)


def test_two_builds_writing_one_store_lose_nothing(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_failures, args=(str(tmp_path), tag, 25)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(rs.ReferenceStore(tmp_path).failures()) == 50


def test_merge_sticks_keeps_total_intensity_first_moment_and_the_broadened_spectrum():
    rng = np.random.default_rng(3)
    e = np.sort(rng.uniform(0, 30, 5000))
    w = rng.uniform(0, 1, 5000)
    me, mw = rs.merge_sticks(e, w)
    assert me.size <= 30 / rs.STICK_MERGE_EV + 1 and np.all(np.diff(me) > 0)
    assert np.isclose(mw.sum(), w.sum()) and np.isclose((me * mw).sum(), (e * w).sum())
    for fwhm in (0.5, 1.0):
        a, b = broaden_to_grid(e, w, fwhm), broaden_to_grid(me, mw, fwhm)
        assert np.max(np.abs(a - b)) < 1e-3 * np.max(a)
    # two sticks 0.2 eV apart stay two; by hand: 1.00 and 1.02 merge to (1.00*1 + 1.02*3) / 4 = 1.015
    me, mw = rs.merge_sticks(np.array([1.0, 1.02, 1.2]), np.array([1.0, 3.0, 2.0]))
    np.testing.assert_allclose(me, [1.015, 1.2])
    np.testing.assert_allclose(mw, [4.0, 2.0])


def test_compact_rewrites_stored_sticks_merged(tmp_path):
    st = GPAWSettings(mpi_procs=1)
    store = rs.ReferenceStore(tmp_path)
    site = rs.site_from_record(_record("q", 1, st), "h")
    e = np.linspace(0, 30, 4000).astype(np.float32)
    store.add(dataclasses.replace(site, stick_energy=e, stick_intensity=np.ones_like(e)), st)
    assert store.compact() == 1
    back = store.read_structure("q")[0]
    assert back.stick_energy.size < 700 and np.isclose(back.stick_intensity.sum(), 4000, rtol=1e-5)


def test_a_worker_killed_by_a_signal_is_not_a_failure_and_runs_again(tmp_path, monkeypatch):
    fake = _FakeGPAW()
    monkeypatch.setattr(rb, "run_site", fake)
    plan = [rb.PlannedSite("killed", 1, "test", 3)]
    store = rs.ReferenceStore(tmp_path)
    rep = rb.build(plan, lambda sid: _structure(), store, GPAWSettings(mpi_procs=1), progress=False)
    assert (rep.interrupted, rep.failed, store.failures()) == (1, 0, {})
    rb.build(plan, lambda sid: _structure(), store, GPAWSettings(mpi_procs=1), progress=False)
    assert fake.calls == [("killed", 1), ("killed", 1)]


def test_the_driver_tells_a_signal_from_a_failing_worker(tmp_path):
    from s2s.simulate import gpaw_ref

    with pytest.raises(gpaw_ref.WorkerInterrupted, match="signal 15"):
        gpaw_ref._run(["sh", "-c", "kill -TERM $$"], tmp_path / "log", tmp_path)
    with pytest.raises(RuntimeError, match="rc=3") as e:
        gpaw_ref._run(["sh", "-c", "exit 3"], tmp_path / "log", tmp_path)
    assert not isinstance(e.value, gpaw_ref.WorkerInterrupted)


def test_interleave_shares_cpu_between_groups_and_keeps_each_groups_order():
    P = rb.PlannedSite
    plan = (
        [P(f"t{i}", 0, "test", 10) for i in range(4)]
        + [P(f"v{i}", 0, "validation", 10) for i in range(4)]
        + [P(f"s{i}", 0, "train-SiOx<=2", 10 + i) for i in range(12)]
        + [P("o0", 0, "train-other", 5)]
    )
    out = rb.interleave(plan, {"test": 1, "validation": 1, "train-SiOx<=2": 3, "train-other": 0}, cost=lambda n: 1.0)
    assert sorted(out, key=repr) == sorted(plan, key=repr)  # nothing lost or doubled
    # equal unit costs: per 5 sites one test, one validation, three training, while all three last
    first10 = [p.group for p in out[:10]]
    assert first10.count("test") == 2 and first10.count("validation") == 2 and first10.count("train-SiOx<=2") == 6
    for g in ("test", "validation", "train-SiOx<=2"):  # each group keeps its own order
        assert [p for p in out if p.group == g] == [p for p in plan if p.group == g]
    assert out[-1].structure_id == "o0"  # share 0: only after the rest
    # costs count, not site numbers: one expensive test site buys several cheap training sites
    plan2 = [P("T", 0, "test", 100), P("t", 0, "test", 100)] + [P(f"s{i}", 0, "train-SiOx<=2", 1) for i in range(5)]
    out2 = rb.interleave(plan2, {"test": 1, "train-SiOx<=2": 1}, cost=float)
    assert [p.structure_id for p in out2] == ["T", "s0", "s1", "s2", "s3", "s4", "t"]
    with pytest.raises(ValueError, match="no share for group"):
        rb.interleave(plan, {"test": 1})
    # computed sites keep their place but cost nothing: the shares hold for what is left to do
    plan3 = [P(f"t{i}", 0, "test", 1) for i in range(4)] + [P(f"s{i}", 0, "train-SiOx<=2", 1) for i in range(4)]
    done = {(f"t{i}", 0) for i in range(3)}
    out3 = rb.interleave(plan3, {"test": 1, "train-SiOx<=2": 1}, cost=float, done=done)
    todo = [p.structure_id for p in out3 if (p.structure_id, 0) not in done]
    assert todo == ["t3", "s0", "s1", "s2", "s3"]  # without done: t3 would wait behind s0-s2
    assert [p.structure_id for p in rb.interleave(plan3, {"test": 1, "train-SiOx<=2": 1}, cost=float)][:4] == [
        "t0",
        "s0",
        "t1",
        "s1",
    ]


def test_dataset_plan_orders(monkeypatch):
    R = types.SimpleNamespace
    recs = [R(structure_id=f"a{i}", site_index=0, x=2.0) for i in range(6)]
    strict = rb.plan_order(recs, ["test", "test", "test", "train", "train", "train"], lambda s: 10)
    assert [p.group for p in strict] == ["test"] * 3 + ["train-SiOx<=2"] * 3
    mixed = rb.interleave(strict)
    assert [p.group for p in mixed[:4]] == ["test", "train-SiOx<=2", "train-SiOx<=2", "test"]  # shares 1 : 2
    with pytest.raises(ValueError, match="order must be"):
        rb.dataset_plan(None, order="random")


def test_time_reversal_is_a_run_only_setting_and_reaches_the_worker():
    from s2s.simulate.gpaw_ref import prepare_input

    base = dataclasses.replace(rs.BUILD_SETTINGS, xas_time_reversal=False)
    assert rs.BUILD_SETTINGS.xas_time_reversal
    assert base.calc_key() == rs.BUILD_SETTINGS.calc_key() == "0f03684d34d8"  # the store's records stay valid
    assert "xas_time_reversal" in rs.BUILD_SETTINGS.as_dict()  # but every record names it
    s = _structure()
    assert prepare_input(s, 1, rs.BUILD_SETTINGS, "/tmp", "x.txt")["xas_time_reversal"] is True
    assert prepare_input(s, 1, base, "/tmp", "x.txt")["xas_time_reversal"] is False


def test_coverage_counts_sites_per_split_at_the_builds_settings_only(tmp_path):
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import Environment
    from s2s.simulate.xtb_settings import structure_hash
    from s2s.splits import validation_split

    s = _structure()
    env = Environment(species=np.array([1, 0]), coords=np.array([[0, 0, 0], [1.6, 0, 0]]), shell=np.array([0, 1]))
    spec = np.ones(GRID.size) / np.trapezoid(np.ones(GRID.size), GRID)
    ids = [f"t{i:02d}" for i in range(30)]
    recs = [
        SiteRecord(
            spectrum=spec,
            environment=env,
            structure_id=sid,
            site_index=k,
            formula="SiO2",
            simulator="xtb-gfn1",
            split="test" if sid in ("t00", "t01") else "train",
        )
        for sid in ids
        for k in (1, 2)
    ]
    ds = Dataset.from_records(recs, {sid: s for sid in ids})
    fit, val = validation_split(ds.train)
    assert len(val) and len(fit)  # the toy has all three parts
    st, other = GPAWSettings(mpi_procs=1), GPAWSettings(mpi_procs=1, h=0.25)
    store = rs.ReferenceStore(tmp_path / "store")
    h = structure_hash(s)
    v0 = val.records[0].structure_id
    f0, f1 = fit.records[0].structure_id, fit.records[-1].structure_id
    for sid, k in (("t00", 1), ("t00", 2), ("t01", 1), (v0, 2), (f0, 1), (f1, 1), (f1, 2)):
        store.add(rs.site_from_record(_record(sid, k, st), h), st)
    store.add(rs.site_from_record(_record(f0, 2, other), h), other)  # other settings: not counted
    store.add_failure(v0, 1, "SCF", st.calc_key(), 3.0)
    store.add_failure(f0, 2, "SCF", other.calc_key(), 3.0)
    cov = rb.coverage(ds, store, st)
    split = cov["by_split"]
    assert {k: v["sites"] for k, v in split.items()} == {"test": 4, "validation": len(val), "fit": len(fit)}
    assert [split[k]["with_reference"] for k in ("test", "validation", "fit")] == [3, 1, 3]
    assert [split[k]["structures_with_reference"] for k in ("test", "validation", "fit")] == [2, 1, 2]
    assert cov["n_reference_sites"] == 7 and cov["not_in_dataset"] == 0
    assert cov["failures"] == [f"{v0}:1"]
    assert cov["calc_key"] == st.calc_key() and cov["reference_settings"]["h"] == st.h
    assert cov["cpu_hours"] == pytest.approx(7 * 11.0 / 3600, abs=0.01)
    assert rb.coverage(ds, store, other)["n_reference_sites"] == 1


def test_coverage_order_gives_every_structure_a_site_before_any_gets_another():
    R = types.SimpleNamespace
    # structure a (small cell) has three sites, b (big) two, c (mid) one; a's site 0 is already computed
    recs = [
        R(structure_id=s, site_index=i, x=2.0) for s, i in [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 5)]
    ]
    atoms = {"a": 30, "b": 140, "c": 60}
    groups = ["train"] * 6
    by_size = rb.plan_order(recs, groups, atoms.__getitem__)
    assert [(p.structure_id, p.site_index) for p in by_size] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("c", 5),
        ("b", 0),
        ("b", 1),
    ]
    plan = rb.plan_order(recs, groups, atoms.__getitem__, within="coverage", done={("a", 0)})
    todo = [(p.structure_id, p.site_index) for p in plan if (p.structure_id, p.site_index) != ("a", 0)]
    # round 0: c and b (no site yet), smallest cell first; round 1: a's next site and b's second; round 2: a's last
    assert todo == [("c", 5), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    rounds = rb.coverage_rounds(plan, done={("a", 0)})
    assert rounds[("a", 0)] == 0 and rounds[("a", 1)] == 1 and rounds[("a", 2)] == 2 and rounds[("b", 1)] == 1
    # nothing computed: plain turns in site-index order
    fresh = rb.plan_order(recs, groups, atoms.__getitem__, within="coverage")
    assert [(p.structure_id, p.site_index) for p in fresh] == [
        ("a", 0),
        ("c", 5),
        ("b", 0),
        ("a", 1),
        ("b", 1),
        ("a", 2),
    ]
    # groups still come first: a test site of a covered structure precedes every training site
    mixed = rb.plan_order(recs, ["train"] * 5 + ["test"], atoms.__getitem__, within="coverage", done={("a", 0)})
    assert mixed[0].group == "test"
    with pytest.raises(ValueError, match="within must be"):
        rb.plan_order(recs, groups, atoms.__getitem__, within="random")
