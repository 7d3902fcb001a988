"""``s2s predict --html`` and the notebooks' 3D views (issue 33, part 3): a self-contained page (nothing fetched:
no external script, stylesheet or image), the consensus candidate first, and - in headless Chromium with the
network disabled - a drawn 3D canvas per candidate.  The browser test runs where ``chromium`` is installed
(``bash scripts/install_browser.sh``; CI installs it only with ``S2S_BROWSER_TESTS=1``) and is skipped elsewhere."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from s2s.predict.context import DEFAULT_FORWARD
from tests.test_eels_formats import _image, _write_hspy, tiny  # noqa: F401  (tiny: the fixture)

CHROMIUM = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
#: Flags for a browser with no network: headless, no background/update/sync traffic, every host unresolvable, a
#: proxy that does not exist, a fresh profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]

#: Appended to a copy of the page: per canvas, the number of pixels drawn in a colour other than the background
#: white (a canvas never drawn on is transparent and counts 0).
_PIXEL_CHECK = """<script>
window.addEventListener("load", function () {
  var out = [];
  document.querySelectorAll("canvas.s2s-3d").forEach(function (c) {
    var d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, n = 0;
    for (var i = 0; i < d.length; i += 4)
      if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;  // drawn, not white
    out.push(n);
  });
  var pre = document.createElement("pre"); pre.id = "s2s-check"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):  # noqa: F811
    """overview.html of a 2x1 spectrum image's pixel, ranked by the shipped forward model (4 candidates)."""
    root = tmp_path_factory.mktemp("html")
    src = _write_hspy(root / "map.hspy", _image(1, 2)) if _rsciio() else _npz(root)
    extra = ["--html", "--pixel", "1,0", "--n-samples", "4"]
    data, model = tiny
    from s2s.cli import main

    argv = ["predict", str(src), "--model", str(model), "--data", str(data), "--steps", "2", "--quiet", "--no-png"]
    if not Path(DEFAULT_FORWARD).exists():
        argv.append("--no-rank")
    assert main(argv + ["--out", str(root / "out"), *extra]) == 0
    folder = next((root / "out").glob("map/*"))
    return folder / "overview.html"


def _rsciio() -> bool:
    from s2s.io.eels import rsciio_available

    return rsciio_available()


def _npz(root: Path) -> Path:
    from tests.test_eels_formats import ENERGY

    np.savez(root / "map.npz", energy=ENERGY, spectra=_image(1, 2))
    return root / "map.npz"


def test_overview_html_is_self_contained_with_the_consensus_first(report):
    text = report.read_text()
    summary = json.loads((report.parent / "summary.json").read_text())
    # nothing to fetch: no src/href to another place, no stylesheet link, no CDN (the only URL is SVG's namespace)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", text)
    assert "<link" not in text and "cdn" not in text.lower()
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert text.count('class="s2s-3d"') == len(summary["candidates"]["signatures"]) == 4
    captions = re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", text)
    assert captions[0].startswith("consensus: " + summary["candidates"]["signatures"][0])
    assert "s2sView" in text and "<svg" in text and "polyline" in text
    assert "spectrum image: pixel [1, 0]" in text
    if summary.get("ranking"):
        assert text.count("<polyline") == 1 + min(4, len(summary["ranking"]["candidates"]))


def test_view_candidates_for_notebooks(report):
    from s2s.plots import view_candidates, view_environments
    from s2s.predict import read_prediction

    cands, summary = read_prediction(report.parent)
    v = view_candidates((cands, summary), n=2)
    assert v._repr_html_().count('class="s2s-3d"') == 2 and "s2sView" in v.html
    one = view_environments(cands[0])
    out = report.parent.parent / "one.html"
    one.save(out)
    assert out.read_text().startswith("<!DOCTYPE html>") and "https://" not in out.read_text()


def _chromium(args: list[str], profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (bash scripts/install_browser.sh)")
def test_overview_html_draws_the_candidates_in_headless_chromium_offline(report, tmp_path):
    page = tmp_path / "check.html"
    page.write_text(report.read_text().replace("</body>", _PIXEL_CHECK, 1))
    r = _chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], tmp_path / "profile")
    m = re.search(r'<pre id="s2s-check">(\[[^<]*\])</pre>', r.stdout)
    assert m, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    counts = json.loads(m.group(1))
    assert len(counts) == 4, counts  # one canvas per candidate
    assert all(n > 200 for n in counts), counts  # each has atoms and bonds drawn (a 240 px canvas: 57,600 pixels)
    shot = tmp_path / "shot.png"
    r = _chromium(["--window-size=1100,1400", f"--screenshot={shot}", report.as_uri()], tmp_path / "profile2")
    assert shot.exists(), r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)  # shell-1 atoms (#d62728)
    assert red.sum() > 50
