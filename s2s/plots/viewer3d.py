"""Rotatable 3D views of environments that work offline: a small canvas viewer (JavaScript inline, ~100 lines,
no WebGL, nothing fetched from a CDN) for notebooks (:func:`view_environments`, :func:`view_candidates`) and
``s2s predict --html`` (:func:`candidates_html`, used by :mod:`s2s.predict.html`).

Why not py3Dmol or nglview: py3Dmol's package (2.5) does not ship 3Dmol.js - its views load it from
cdn.jsdelivr.net, so they stay blank offline - and nglview needs a Jupyter widget extension.  The viewer
here draws ball-and-stick on a 2D canvas (orthographic projection, depth-sorted, shaded spheres): drag to
rotate, wheel to zoom, double-click to reset.  Atoms are coloured by shell (:data:`SHELL_COLOURS`: the
excited O*, shells 1-3 of the 2.0 Å graph-hop rule, unassigned), Si drawn larger than O; bonds are the Si-O
pairs within :data:`BOND_CUTOFF_A`.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Sequence

import numpy as np

from s2s.environment import Environment

#: Si-O pairs drawn as bonds (Å), the shells' rule.
BOND_CUTOFF_A = 2.0
#: Shell -> colour: 0 the excited O*, 1-3 the graph-hop shells, 4 unassigned.
SHELL_COLOURS = {0: "#f0b400", 1: "#d62728", 2: "#1f77b4", 3: "#2ca02c", 4: "#9a9a9a"}
SHELL_NAMES = {0: "excited O*", 1: "shell 1", 2: "shell 2", 3: "shell 3", 4: "unassigned"}

#: The viewer: ``s2sView(canvas, mol)``; ``mol`` = {"atoms": [[x, y, z, "Si", shell], ...], "bonds": [[i, j], ...]}.
VIEWER_JS = r"""
(function () {
  if (window.s2sView) return;
  var COL = %COLOURS%;
  function rgb(h, f) {
    var n = parseInt(h.slice(1), 16), r = (n >> 16) & 255, g = (n >> 8) & 255, b = n & 255;
    function c(v) { return Math.max(0, Math.min(255, Math.round(f >= 0 ? v + (255 - v) * f : v * (1 + f)))); }
    return "rgb(" + c(r) + "," + c(g) + "," + c(b) + ")";
  }
  function mul(a, b) {
    var o = [];
    for (var i = 0; i < 3; i++) for (var j = 0; j < 3; j++)
      o.push(a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j]);
    return o;
  }
  function rotY(t) { var c = Math.cos(t), s = Math.sin(t); return [c, 0, s, 0, 1, 0, -s, 0, c]; }
  function rotX(t) { var c = Math.cos(t), s = Math.sin(t); return [1, 0, 0, 0, c, -s, 0, s, c]; }
  window.s2sView = function (canvas, mol) {
    var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    var R0 = mul(rotX(-0.45), rotY(0.6)), R = R0.slice(), zoom = 1.0;
    var ext = 1.0;
    mol.atoms.forEach(function (a) { ext = Math.max(ext, Math.hypot(a[0], a[1], a[2])); });
    function draw() {
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      var s = zoom * 0.42 * Math.min(W, H) / (ext + 0.8), P = [];
      mol.atoms.forEach(function (a) {
        P.push([R[0] * a[0] + R[1] * a[1] + R[2] * a[2], R[3] * a[0] + R[4] * a[1] + R[5] * a[2],
                R[6] * a[0] + R[7] * a[1] + R[8] * a[2]]);
      });
      var items = [];
      mol.bonds.forEach(function (b) { items.push({z: (P[b[0]][2] + P[b[1]][2]) / 2 - 0.01, b: b}); });
      mol.atoms.forEach(function (a, i) { items.push({z: P[i][2], i: i}); });
      items.sort(function (u, v) { return u.z - v.z; });
      items.forEach(function (it) {
        if (it.b) {
          var p = P[it.b[0]], q = P[it.b[1]];
          ctx.strokeStyle = "#666"; ctx.lineWidth = Math.max(1.5, 0.12 * s);
          ctx.beginPath(); ctx.moveTo(W / 2 + s * p[0], H / 2 - s * p[1]);
          ctx.lineTo(W / 2 + s * q[0], H / 2 - s * q[1]); ctx.stroke();
          return;
        }
        var a = mol.atoms[it.i], p = P[it.i], r = s * (a[3] === "Si" ? 0.42 : 0.30) * (a[4] === 0 ? 1.25 : 1.0);
        var x = W / 2 + s * p[0], y = H / 2 - s * p[1], col = COL[a[4]] || "#999999";
        var g = ctx.createRadialGradient(x - r / 3, y - r / 3, r / 8, x, y, r);
        g.addColorStop(0, rgb(col, 0.55)); g.addColorStop(1, rgb(col, -0.25));
        ctx.fillStyle = g; ctx.beginPath(); ctx.arc(x, y, Math.max(r, 1.5), 0, 2 * Math.PI); ctx.fill();
        ctx.strokeStyle = a[4] === 0 ? "#000" : rgb(col, -0.5); ctx.lineWidth = a[4] === 0 ? 2 : 1; ctx.stroke();
      });
    }
    var drag = null;
    canvas.addEventListener("pointerdown", function (e) {
      drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointerup", function () { drag = null; });
    canvas.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var dx = e.clientX - drag[0], dy = e.clientY - drag[1];
      drag = [e.clientX, e.clientY];
      R = mul(mul(rotX(dy * 0.01), rotY(dx * 0.01)), R); draw();
    });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault(); zoom = Math.max(0.3, Math.min(5, zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1))); draw();
    }, {passive: false});
    canvas.addEventListener("dblclick", function () { R = R0.slice(); zoom = 1.0; draw(); });
    canvas.style.cursor = "grab";
    draw();
  };
})();
""".replace("%COLOURS%", json.dumps({str(k): v for k, v in SHELL_COLOURS.items()}))


def environment_json(env: Environment) -> dict:
    """``{"atoms": [[x, y, z, species, shell], ...], "bonds": [[i, j], ...]}`` (coordinates centred on the
    excited O, Å) for :data:`VIEWER_JS`; bonds are Si-O pairs within :data:`BOND_CUTOFF_A`."""
    xyz = np.asarray(env.coords, dtype=float)
    sp = list(env.symbols()) if hasattr(env, "symbols") else [str(s) for s in env.species]
    shell = np.asarray(env.shell if env.shell is not None else np.full(len(sp), 4), dtype=int)
    if len(xyz) and np.all(np.isfinite(xyz[0])):
        xyz = xyz - xyz[0]  # the excited O at the centre of the view
    ok = np.all(np.isfinite(xyz), axis=1)
    atoms = [
        [round(float(x), 3), round(float(y), 3), round(float(z), 3), s, int(h)]
        for (x, y, z), s, h, k in zip(xyz, sp, shell, ok)
        if k
    ]
    keep = np.flatnonzero(ok)
    d = np.linalg.norm(xyz[keep, None, :] - xyz[None, keep, :], axis=-1)
    spk = [sp[i] for i in keep]
    bonds = [
        [i, j]
        for i in range(len(keep))
        for j in range(i + 1, len(keep))
        if {spk[i], spk[j]} == {"Si", "O"} and d[i, j] <= BOND_CUTOFF_A
    ]
    return {"atoms": atoms, "bonds": bonds}


def legend_html() -> str:
    """The shell colours as an HTML line."""
    dots = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:11px;'
        f'height:11px;border-radius:6px;background:{c};vertical-align:middle"></span> {SHELL_NAMES[k]}</span>'
        for k, c in SHELL_COLOURS.items()
    )
    return (
        f'<div class="s2s-legend" style="font:12px sans-serif;margin:4px 0">{dots} (Si large, O small; drag to '
        "rotate, wheel to zoom, double-click to reset)</div>"
    )


def candidates_html(
    envs: Sequence[Environment], titles: Sequence[str] | None = None, size: int = 260, legend: bool = True
) -> str:
    """An HTML fragment: one rotatable canvas per environment (in the given order), the viewer script inline
    (self-contained, no network).  ``titles``: a caption per environment."""
    uid = uuid.uuid4().hex[:10]
    titles = list(titles) if titles is not None else [f"{i}" for i in range(len(envs))]
    cells, mols = [], []
    for i, (e, t) in enumerate(zip(envs, titles)):
        cells.append(
            f'<figure class="s2s-cell" style="display:inline-block;margin:4px;vertical-align:top;width:{size}px">'
            f'<canvas id="s2s-{uid}-{i}" class="s2s-3d" width="{size}" height="{size}" '
            f'style="border:1px solid #ccc;touch-action:none"></canvas>'
            f'<figcaption style="font:11px sans-serif;word-wrap:break-word">{html.escape(str(t))}</figcaption></figure>'
        )
        mols.append(environment_json(e))
    script = (
        f"<script>{VIEWER_JS}\n(function () {{ var mols = {json.dumps(mols)};\n"
        f'mols.forEach(function (m, i) {{ s2sView(document.getElementById("s2s-{uid}-" + i), m); }}); }})();</script>'
    )
    return f'<div class="s2s-candidates">{legend_html() if legend else ""}{"".join(cells)}</div>{script}'


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML page."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="font-family:sans-serif;margin:16px">{body}</body></html>\n'
    )


class HTMLView:
    """Rich display for notebooks (``_repr_html_``); ``save(path)`` writes a self-contained page."""

    def __init__(self, fragment: str, title: str = "s2s"):
        self.html, self.title = fragment, title

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path) -> None:
        from pathlib import Path

        Path(path).write_text(page(self.title, self.html), encoding="utf-8")


def view_environments(
    envs: Environment | Sequence[Environment], titles: Sequence[str] | None = None, size: int = 240
) -> HTMLView:
    """Rotatable 3D views of environments in a notebook (offline: the viewer is inline)."""
    if isinstance(envs, Environment):
        envs = [envs]
    return HTMLView(candidates_html(list(envs), titles, size=size), "s2s environments")


def candidate_titles(pred_summary: dict, n: int) -> list[str]:
    """Captions for the first ``n`` candidates of a ``s2s predict`` summary: consensus, signature, rank, MSE."""
    sig = pred_summary["candidates"]["signatures"]
    rk = (pred_summary.get("ranking") or {}).get("candidates")
    out = []
    for i in range(n):
        t = ("consensus: " if i == 0 else f"#{i}: ") + sig[i]
        if rk:
            c = rk[i]
            t += f" | forward rank {c.get('forward_rank', i) + 1}, MSE {c['spectrum_mse']:.2e}"
            if not c.get("plausible", True):
                t += " (implausible)"
        out.append(t)
    return out


def view_candidates(pred, n: int = 8, size: int = 240) -> HTMLView:
    """The first ``n`` candidates of a :class:`s2s.predict.context.Prediction` (or ``(candidates, summary)`` as
    :func:`s2s.predict.read_prediction` returns), the consensus first, rotatable, coloured by shell."""
    cands, summary = (pred.candidates, pred.summary) if hasattr(pred, "candidates") else pred
    n = min(n, len(cands))
    return HTMLView(candidates_html(cands[:n], candidate_titles(summary, n), size=size), "s2s candidates")


__all__ = [
    "BOND_CUTOFF_A",
    "SHELL_COLOURS",
    "VIEWER_JS",
    "HTMLView",
    "candidate_titles",
    "candidates_html",
    "environment_json",
    "legend_html",
    "page",
    "view_candidates",
    "view_environments",
]
