"""``overview.html`` of ``s2s predict --html``: one self-contained page per spectrum (no network: the 3D viewer
is inline, :mod:`s2s.plots.viewer3d`; the spectra are inline SVG).

Contents: what the input is and the warnings; the input spectrum (aligned, on the model grid) against the
forward-model spectra of the candidates; every candidate rotatable in 3D, coloured by shell, **the consensus
first**, then the forward model's order; the distinct candidates (clusters) with their frequencies.
"""

from __future__ import annotations

import html

import numpy as np

from s2s.plots.viewer3d import candidate_titles, candidates_html, page
from s2s.predict.context import Prediction
from s2s.spectrum import GRID

#: File name in each output folder.
OVERVIEW_HTML = "overview.html"
#: Line colours of the forward-model spectra (consensus first).
_LINE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def spectra_svg(
    x: np.ndarray, lines: list[tuple[np.ndarray, str, str, float]], width: int = 640, height: int = 300
) -> str:
    """An inline SVG line plot: ``lines`` = (y, label, colour, width); axes with ticks in eV."""
    ml, mr, mt, mb = 50, 10, 10, 40
    ys = np.concatenate([np.asarray(y, dtype=float) for y, *_ in lines]) if lines else np.zeros(1)
    ymax = float(np.nanmax(ys)) if np.isfinite(ys).any() else 1.0
    ymax = ymax * 1.05 if ymax > 0 else 1.0
    x0, x1 = float(x[0]), float(x[-1])

    def px(v):
        return ml + (v - x0) / (x1 - x0) * (width - ml - mr)

    def py(v):
        return height - mb - v / ymax * (height - mt - mb)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="s2s-spectra" '
        'style="font:11px sans-serif">',
        f'<rect x="{ml}" y="{mt}" width="{width - ml - mr}" height="{height - mt - mb}" fill="none" stroke="#999"/>',
    ]
    for t in range(int(np.ceil(x0)), int(np.floor(x1)) + 1, 2):
        parts.append(
            f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{height - mb}" y2="{height - mb + 4}" stroke="#555"/>'
            f'<text x="{px(t):.1f}" y="{height - mb + 16}" text-anchor="middle">{t}</text>'
        )
    parts.append(
        f'<text x="{(ml + width - mr) / 2:.0f}" y="{height - 6}" text-anchor="middle">'
        "energy relative to the onset convention (eV)</text>"
    )
    parts.append(
        f'<text x="12" y="{(mt + height - mb) / 2:.0f}" transform="rotate(-90 12 {(mt + height - mb) / 2:.0f})" '
        'text-anchor="middle">intensity (unit area)</text>'
    )
    for k, (y, label, colour, lw) in enumerate(lines):
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y) if np.isfinite(b))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{lw}"/>')
        ly = mt + 14 + 14 * k
        parts.append(
            f'<line x1="{width - mr - 230}" x2="{width - mr - 210}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="{lw}"/><text x="{width - mr - 205}" y="{ly}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def overview_html(pred: Prediction, n_lines: int = 4) -> str:
    """The page (module docstring) for one :class:`~s2s.predict.context.Prediction`."""
    s = pred.summary
    rk = s.get("ranking")
    lines = [(pred.spectrum, "input (aligned)", "#000000", 2.2)]
    if rk and pred.predicted is not None:
        for j in range(min(n_lines, len(pred.candidates))):
            c = rk["candidates"][j]
            lab = ("consensus" if j == 0 else f"#{j}") + f": {c.get('signature', '')} MSE {c['spectrum_mse']:.1e}"
            lines.append((pred.predicted[j], lab, _LINE_COLOURS[j % len(_LINE_COLOURS)], 1.2))
        spec_note = "forward-model spectra of the consensus and the next candidates (the forward model's order)"
    else:
        spec_note = "no forward model (ranking off): the input only"
    pre = s.get("preprocessing", {})
    ood = s.get("ood", {})
    warn = "".join(f"<li>{html.escape(str(w))}</li>" for w in s.get("warnings", []))
    cl = s["candidates"]["clusters"]
    rows = "".join(
        f"<tr><td>{html.escape(c['label'])}</td><td>{c['count']}</td><td>{c['frequency']:.0%}</td></tr>"
        for c in cl[:12]
    )
    cons = s.get("consensus", {})
    info = [
        f"source: {html.escape(str(s.get('source', '')))}",
        f"onset {pre['onset_eV']:.2f} eV, shift {pre.get('shift_eV', 0):.2f} eV "
        f"({html.escape(str(pre.get('shift_mode')))})"
        if "onset_eV" in pre
        else "",
        f"spectrum image: {html.escape(str(pre['si_selection']))}"
        + (f" {pre['si_pixel']}" if "si_pixel" in pre else "")
        + (f" {pre['si_roi']}" if "si_roi" in pre else "")
        if "si_selection" in pre
        else "",
        f"sampling: {s['sampling']['sampler']} {s['sampling']['steps']} steps, K = {s['sampling']['n_samples']}, "
        f"seed {s['sampling']['seed']}",
        f"OOD percentile {ood.get('percentile', float('nan')):.0f}"
        + (
            f" among the {html.escape(str(ood['nearest_fidelity']))} training spectra"
            if "nearest_fidelity" in ood
            else ""
        )
        + (" (flagged)" if ood.get("flag") else ""),
        f"consensus: the medoid of the most frequent composition ({cons.get('composition_share', 0):.0%} of the "
        f"candidates), mean RMSD to the others {cons.get('mean_rmsd_to_others', float('nan')):.2f} Å",
    ]
    n = len(pred.candidates)
    body = (
        f"<h2>{html.escape(pred.name)}: {n} candidate environments</h2>"
        + "<p>"
        + "<br>".join(i for i in info if i)
        + "</p>"
        + (f"<ul style='color:#a00'>{warn}</ul>" if warn else "")
        + f"<h3>Spectra</h3><p style='font-size:12px'>{spec_note}</p>"
        + spectra_svg(GRID, lines)
        + "<h3>Candidates (consensus first; drag to rotate)</h3>"
        + candidates_html(pred.candidates, candidate_titles(s, n), size=240)
        + "<h3>Distinct candidates (shell composition 1|2|3)</h3>"
        + f"<table style='font-size:12px;border-collapse:collapse' border='1' cellpadding='3'>"
        f"<tr><th>composition</th><th>count</th><th>frequency</th></tr>{rows}</table>"
        + "<p style='font-size:11px;color:#555'>s2s predict; the full record is summary.json, the coordinates "
        "candidates.xyz (frame 0 = consensus). A spectrum does not fix handedness (mirror images).</p>"
    )
    return page(f"s2s predict: {pred.name}", body)


__all__ = ["OVERVIEW_HTML", "overview_html", "spectra_svg"]
