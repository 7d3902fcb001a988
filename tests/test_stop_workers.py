"""A stopped build leaves no worker running: the GPAW worker dies with the process that started it
(``s2s.simulate.gpaw_ref.die_with_parent``), and SIGTERM to a build stops its pool workers first
(``s2s.simulate.build.stop_workers_on_sigterm``).  Real processes, with ``sleep`` standing in for GPAW."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc and prctl")


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in state


def _gone_within(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.time() + seconds
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True


def test_gpaw_worker_dies_with_the_process_that_started_it(tmp_path):
    """A build killed by a signal must not leave its GPAW worker running: the worker is started with
    ``die_with_parent`` (the same ``preexec_fn`` as ``_run``), here on a stand-in child (``sleep``)."""
    script = (
        "import subprocess, sys\n"
        "from s2s.simulate.gpaw_ref import die_with_parent\n"
        "p = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "p.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone_within(child), "the worker outlived the process that started it"


def test_sigterm_to_a_build_stops_its_pool_workers_and_their_gpaw_runs(tmp_path):
    """SIGTERM to a process inside ``stop_workers_on_sigterm`` whose ProcessPoolExecutor worker runs a long
    unit (a child started as ``_run`` starts GPAW): the worker and its child stop, and the process exits 143."""
    pidfile = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from s2s.simulate.build import stop_workers_on_sigterm\n"
        "from s2s.simulate.gpaw_ref import die_with_parent\n"
        "def unit(path):\n"
        "    p = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
        "    open(path + '.tmp', 'w').write(f'{os.getpid()} {p.pid}')\n"
        "    os.rename(path + '.tmp', path)\n"
        "    return p.wait()\n"
        "if __name__ == '__main__':\n"
        "    with stop_workers_on_sigterm(), ProcessPoolExecutor(1) as ex:\n"
        f"        ex.submit(unit, {str(pidfile)!r}).result()\n"
    )
    build = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not pidfile.exists() and time.time() < deadline:
        time.sleep(0.05)
    worker, gpaw = (int(x) for x in pidfile.read_text().split())
    assert _alive(worker) and _alive(gpaw)
    build.send_signal(signal.SIGTERM)
    rc = build.wait(timeout=30)
    assert _gone_within(worker), "the pool worker outlived the stopped build"
    assert _gone_within(gpaw), "the GPAW stand-in outlived the stopped build"
    assert rc == 143
