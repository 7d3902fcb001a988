"""The xTB build on Dask workers (``python -m s2s.simulate.build --dask ...``).

A real ``distributed.LocalCluster`` of two single-threaded worker processes computes two small
structures (36-atom quartz supercells, Z+1); the cache it writes must be the serial run's, bit for
bit, and resumable by any executor.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tblite")
pytest.importorskip("distributed")

from s2s.simulate import build as B  # noqa: E402
from s2s.simulate.xtb import XtbSettings  # noqa: E402

# what `--min-length 5` gives on the command line: Z+1, 2x2x1 quartz supercells (36 atoms)
SETTINGS = XtbSettings(variant="z+1", min_length=5.0)


def _structures(alpha_quartz, folder):
    strained = alpha_quartz.copy()
    strained.scale_lattice(alpha_quartz.volume * 1.03)
    items = [("qa", alpha_quartz), ("qb", strained)]
    folder.mkdir()
    for sid, s in items:
        (folder / f"{sid}.json").write_text(json.dumps({"id": sid, "structure": s.as_dict()}))
    return items


def test_dask_local_cluster_matches_serial_bit_for_bit(alpha_quartz, tmp_path, monkeypatch, capsys):
    items = _structures(alpha_quartz, tmp_path / "structures")

    def not_here(*a, **k):
        raise AssertionError("computed in the calling process, not on a Dask worker")

    with monkeypatch.context() as m:  # the workers are other processes: they use the real simulator
        m.setattr(B, "simulate_site", not_here)
        rc = B.main(
            [
                "--structures",
                str(tmp_path / "structures"),
                "--out",
                str(tmp_path / "dask"),
                "--min-length",
                "5",
                "--dask",
                "local",
                "--workers",
                "2",
                "--nice",
                "0",
            ]
        )
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 structures, 2 sites: 0 cached, 0 stale, 2 computed, 0 failed" in out, out

    serial = B.build(items, SETTINGS, tmp_path / "serial", progress=False)
    assert serial.computed == 2 and serial.failed == 0
    spectra = []
    for sid, s in items:
        for site in B.default_sites(s, sid):
            a = json.loads(B.site_path(tmp_path / "serial", SETTINGS, sid, site).read_text())
            b = json.loads(B.site_path(tmp_path / "dask", SETTINGS, sid, site).read_text())
            a.pop("seconds"), b.pop("seconds")
            assert a == b and a["ok"], (sid, site)
            ya = B.load_site(tmp_path / "serial", SETTINGS, sid, site, s).spectrum
            yb = B.load_site(tmp_path / "dask", SETTINGS, sid, site, s).spectrum
            assert np.array_equal(ya, yb)
            spectra.append(yb)
    assert len(spectra) == 2 and not np.allclose(spectra[0], spectra[1])  # two different structures

    # the Dask-built cache resumes like any other: nothing left to compute
    again = B.build(items, SETTINGS, tmp_path / "dask", progress=False)
    assert again.computed == 0 and again.cached == 2


def test_dask_bad_address_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    for bad, words in (
        (["--dask", "my-cluster"], "scheduler address"),
        (["--dask", "local", "--workers", "0"], "at least one worker"),
    ):
        with pytest.raises(SystemExit) as e:
            B.main(["--structures", str(tmp_path / "s"), *bad])
        assert e.value.code == 2 and words in capsys.readouterr().err
    with pytest.raises(ValueError, match="scheduler address"):
        with B.dask_executor("http://x:8786"):
            pass


def test_dask_unreachable_scheduler(tmp_path):
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler"):
        with B.dask_executor(f"tcp://127.0.0.1:{port}", timeout=2):
            pass
