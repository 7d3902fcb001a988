"""JupyterLab opens notebooks/NN_*.py as notebooks (jupytext), with the project's kernel.

Starts a real Jupyter server on localhost (a free port, a random token) from this environment and
talks to it through its REST API, as the browser does.  Nothing is written into the repository:
the server's runtime and config folders are temporary.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab")
pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.py"))


class Server:
    """A running ``jupyter lab`` (no browser) and a tiny authenticated REST client for it."""

    def __init__(self, base: str, token: str, proc: subprocess.Popen, runtime_dir: Path) -> None:
        self.base, self.token, self.proc, self.runtime_dir = base, token, proc, runtime_dir

    def request(self, path: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=data,
            headers={
                "Authorization": f"token {self.token if token is None else token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("jupyter")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
    }
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={ROOT}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
    )
    srv = Server(f"http://127.0.0.1:{port}", token, proc, tmp / "runtime")
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                srv.request("/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 120 s:\n{(tmp / 'server.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_every_numbered_notebook_is_there():
    assert len(NOTEBOOKS) >= 7, NOTEBOOKS


def test_token_is_required(server: Server):
    with pytest.raises(urllib.error.HTTPError) as err:
        server.request("/api/contents/notebooks", token="not-the-token")
    assert err.value.code == 403


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_py_notebook_opens_as_notebook(server: Server, path: Path):
    model = server.request(f"/api/contents/notebooks/{path.name}")
    assert model["type"] == "notebook" and model["format"] == "json", (model["type"], model["format"])
    nb = model["content"]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith(f"# {path.stem[:2]}")
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "small = False" in tagged[0]["source"]
    # a text notebook: one notebook cell per '# %%' marker of the source
    n_markers = sum(1 for line in path.read_text().splitlines() if line.startswith("# %%"))
    assert len(cells) == n_markers


def test_double_click_opens_py_as_notebook(server: Server):
    """The environment's JupyterLab default (jupyter/s2s.json, copied by scripts/install.sh)."""
    plugin = server.request("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    # no user settings here (a temporary settings folder): the effective value is the default,
    # i.e. the schema's default with the environment's overrides applied
    assert "defaultViewers" not in plugin["settings"]
    viewers = plugin["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook", (
        f"defaultViewers = {viewers}: run scripts/install.sh (copies jupyter/s2s.json to "
        f"{sys.prefix}/share/jupyter/lab/settings/overrides.d/)"
    )


def test_project_kernel_runs_s2s(server: Server):
    """The notebooks' kernel (python3) is this environment's Python, and it imports s2s."""
    from jupyter_client import BlockingKernelClient

    kernel = server.request("/api/kernels", "POST", {"name": "python3", "path": "notebooks"})
    try:
        client = BlockingKernelClient(connection_file=str(server.runtime_dir / f"kernel-{kernel['id']}.json"))
        client.load_connection_file()
        client.start_channels(hb=False)  # a client without a manager: the heartbeat would start paused
        try:
            client.wait_for_ready(timeout=120)
            out: list[str] = []
            reply = client.execute_interactive(
                "import os, sys, s2s; print(sys.prefix); print(os.getcwd())",
                timeout=120,
                output_hook=lambda msg: out.append(msg["content"].get("text", "")),
            )
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            client.stop_channels()
    finally:
        server.request(f"/api/kernels/{kernel['id']}", "DELETE")
    prefix, cwd = "".join(out).split()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    assert Path(cwd).resolve() == (ROOT / "notebooks").resolve()  # relative paths as in the notebooks


def test_saving_from_jupyterlab_keeps_the_py_and_pairs_an_ipynb(server: Server):
    """Open + save (what JupyterLab's autosave does) leaves the tracked .py byte for byte as it
    was (notebooks/jupytext.toml), and writes the outputs' ipynb beside it."""
    import shutil
    import uuid

    work = ROOT / "runs" / f"test_jupyter_{uuid.uuid4().hex[:8]}" / "notebooks"  # ignored by git
    work.mkdir(parents=True)
    try:
        shutil.copy(ROOT / "notebooks" / "jupytext.toml", work)
        for src in NOTEBOOKS:
            shutil.copy(src, work)
            rel = work.relative_to(ROOT).as_posix() + "/" + src.name
            model = server.request(f"/api/contents/{rel}")
            nb = model["content"]
            # a kernel adds these when the notebook is opened; they must not reach the .py
            nb["metadata"]["language_info"] = {"name": "python", "version": sys.version.split()[0]}
            server.request(f"/api/contents/{rel}", "PUT", {"type": "notebook", "format": "json", "content": nb})
            assert (work / src.name).read_bytes() == src.read_bytes(), src.name
            paired = json.loads((work / src.name).with_suffix(".ipynb").read_text())
            assert len(paired["cells"]) == len(nb["cells"])
    finally:
        shutil.rmtree(work.parent)
