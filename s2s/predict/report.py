"""Writing ``s2s predict``'s results: one folder per input spectrum, and reading it back.

* :func:`write_prediction` - ``candidates.xyz`` (extended XYZ, excited O first, per-atom ``shell``,
  best-ranked first), ``summary.json``, ``overview.png`` (:func:`overview_figure`); the folder is
  built under a temporary name and renamed when complete, so it exists only when done.
* :func:`read_prediction` - an output folder back into (candidates, summary).
* :func:`write_maps` - for spectrum images, per-pixel maps ``<stem>/maps.npz``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2s.ensembles.describe import geometry, shells
from s2s.environment import Environment
from s2s.files import atomic_path
from s2s.geometry.shells import coordination_numbers
from s2s.predict.context import PredictContext, Prediction
from s2s.predict.html import OVERVIEW_HTML, overview_html
from s2s.predict.prepare import InputSpectrum, safe_name
from s2s.spectrum import GRID

#: Predicted spectra of this many top-ranked candidates are drawn in the overview.
N_OVERLAY = 3
#: Files written per spectrum.
XYZ, SUMMARY, OVERVIEW = "candidates.xyz", "summary.json", "overview.png"


def read_prediction(folder: str | os.PathLike) -> tuple[list[Environment], dict]:
    """Read one output folder of ``s2s predict``: the candidates (extended XYZ, in file order) and
    summary.json.  Folders written before the ranking existed load too (``summary.get("ranking")``
    is then None and the candidates are in generation order)."""
    import json

    from s2s.io import read_extxyz

    folder = Path(folder)
    for f in (XYZ, SUMMARY):
        if not (folder / f).exists():
            raise FileNotFoundError(f"{folder / f}: missing (not an s2s predict output folder?)")
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{folder / SUMMARY}: not valid JSON ({exc})") from None
    summary.setdefault("ranking", None)
    return read_extxyz(folder / XYZ), summary


# ----------------------------------------------------------------------------- writing
def overview_figure(pred: Prediction, ctx: PredictContext):
    """A 2x4 PNG overview: spectrum with its nearest training spectra, the top candidate in 3-D,
    the input spectrum with the forward-model spectra of the top-ranked candidates (legend: MSE),
    CN per shell, Si-O distances, angles, cluster frequencies, the best-ranked candidate in 3-D."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from s2s.plots import plot_environment, style

    s = pred.summary
    with style():
        fig = plt.figure(figsize=(18.0, 8.0))
        ax = fig.add_subplot(2, 4, 1)
        ax.plot(GRID, pred.spectrum, color="k", lw=1.6, label="input (aligned)")
        for j, nt in enumerate(s["nearest_training"]):
            ax.plot(
                GRID,
                ctx.train_spectra[nt["train_index"]],
                lw=0.9,
                ls="--",
                label=f"{nt['structure_id']} site {nt['site_index']} ({nt['signature']})",
            )
        o = s["ood"]
        ax.set_title(f"OOD percentile {o['percentile']:.0f}" + ("  [FLAGGED]" if o["flag"] else ""), fontsize=9)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        top = s["candidates"]["clusters"][0]
        ax3 = fig.add_subplot(2, 4, 2, projection="3d")
        plot_environment(
            pred.candidates[0],
            ax=ax3,
            title=f"consensus candidate (medoid): {s['candidates']['signatures'][0]}\n"
            f"most frequent: {top['label']} ({top['frequency']:.0%})",
        )
        ax = fig.add_subplot(2, 4, 3)
        rk = s.get("ranking")
        ax.plot(GRID, pred.spectrum, color="k", lw=1.8, label="input (aligned)")
        if rk and pred.predicted is not None:
            for j in range(min(N_OVERLAY, len(pred.candidates))):
                c = rk["candidates"][j]
                ax.plot(
                    GRID, pred.predicted[j], lw=1.0, label=f"#{j + 1} {c['signature']}: MSE {c['spectrum_mse']:.2e}"
                )
            worst = rk["candidates"][-1]
            ax.set_title(
                f"self-consistency: forward model of the top {min(N_OVERLAY, len(pred.candidates))} "
                f"(worst #{len(rk['candidates'])}: {worst['spectrum_mse']:.2e})",
                fontsize=8,
            )
        else:
            ax.set_title("self-consistency: no forward model (ranking off)", fontsize=8)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        ax = fig.add_subplot(2, 4, 4)
        cns = np.array([coordination_numbers(shells(e)) for e in pred.candidates])
        width = 0.27
        allv = np.unique(cns)
        for k in range(cns.shape[1]):
            cnt = np.array([np.sum(cns[:, k] == v) for v in allv]) / len(cns)
            ax.bar(np.arange(len(allv)) + (k - 1) * width, cnt, width, label=f"shell {k + 1}")
        ax.set_xticks(np.arange(len(allv)), [str(v) for v in allv])
        ax.set_xlabel("coordination number")
        ax.set_ylabel("share of candidates")
        ax.legend(fontsize=7)
        geo = [geometry(e) for e in pred.candidates]
        ax = fig.add_subplot(2, 4, 5)
        for key, lab in (("d_sio", "all Si-O bonds"), ("d_sio_first", "Si-O* (first shell)")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(1.3, 2.0, 36), alpha=0.6, label=f"{lab}: {v.mean():.3f}±{v.std():.3f} Å")
        ax.set_xlabel("distance (Å)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no Si-O bonds (<= 2.0 Å)", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 6)
        for key, lab in (("a_osio", "O-Si-O"), ("a_siosi", "Si-O-Si")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(60, 180, 41), alpha=0.6, label=f"{lab}: {v.mean():.1f}±{v.std():.1f}°")
        ax.set_xlabel("angle (degrees)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no bond angles", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 7)
        cl = s["candidates"]["clusters"][:8]
        ax.barh(np.arange(len(cl))[::-1], [c["frequency"] for c in cl], color="0.5")
        ax.set_yticks(
            np.arange(len(cl))[::-1],
            [
                c["label"] + (f"  (best MSE {c['spectrum_mse_best']:.1e})" if "spectrum_mse_best" in c else "")
                for c in cl
            ],
            fontsize=7,
        )
        ax.set_xlabel("frequency (shell composition 1|2|3)")
        ax3 = fig.add_subplot(2, 4, 8, projection="3d")
        if rk:
            best = min(range(len(rk["candidates"])), key=lambda i: rk["candidates"][i].get("forward_rank", i))
            plot_environment(
                pred.candidates[best],
                ax=ax3,
                title=f"best forward-model rank: {rk['candidates'][best]['signature']}\n"
                f"MSE {rk['candidates'][best]['spectrum_mse']:.2e}",
            )
        else:
            ax3.set_axis_off()
        fig.suptitle(
            f"{pred.name}: {s['candidates']['n_samples']} candidates, {s['sampling']['sampler']} "
            f"{s['sampling']['steps']} steps",
            fontsize=10,
        )
        fig.tight_layout()
    return fig


#: summary.json key that marks a folder as written by ``s2s predict`` (with :data:`WRITTEN_BY` as value).
WRITTEN_BY_KEY, WRITTEN_BY = "written_by", "s2s predict"
#: summary.json keys every ``s2s predict`` output has had (outputs written before :data:`WRITTEN_BY_KEY`).
_SUMMARY_KEYS = ("name", "sampling", "candidates")


class OutputConflict(ValueError):
    """``OUT/NAME`` exists and may not be replaced; the message names it and what to do."""


def output_state(out_dir: str | os.PathLike, name: str) -> str:
    """What ``out_dir/name`` is: ``"absent"``; ``"done"`` (a finished ``s2s predict`` output: a folder
    whose summary.json is a JSON object marked :data:`WRITTEN_BY`, or with the keys every output has);
    or ``"foreign"`` (a file, a link, or a folder s2s did not write - never replaced or deleted)."""
    import json

    final = Path(out_dir) / name
    if not final.exists() and not final.is_symlink():
        return "absent"
    if final.is_symlink() or not final.is_dir():
        return "foreign"
    f = final / SUMMARY
    try:
        s = json.loads(f.read_text()) if f.is_file() and not f.is_symlink() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        s = None
    if isinstance(s, dict) and (s.get(WRITTEN_BY_KEY) == WRITTEN_BY or all(k in s for k in _SUMMARY_KEYS)):
        return "done"
    return "foreign"


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Make sure ``out_dir`` is a folder s2s can write in (created if absent) before any work;
    raises ``ValueError`` with one line naming it otherwise.  Returns it as a Path."""
    from s2s.files import _new_temp_file

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, expected a folder (or a path to create)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        _new_temp_file(out, "s2s-write-test", "").unlink()
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def write_prediction(
    out_dir: Path, pred: Prediction, ctx: PredictContext, png: bool = True, overwrite: bool = False, html: bool = False
) -> Path:
    """Write ``out_dir/<name>/`` (XYZ, JSON, PNG; with ``html`` also ``overview.html``, self-contained:
    :mod:`s2s.predict.html`) atomically: built as a hidden temporary
    folder ``.NAME.partial-PID`` next to it and renamed into place; returns the final folder.

    Never deletes what s2s did not write: an existing ``out_dir/<name>`` that is not a finished
    ``s2s predict`` output (:func:`output_state`) raises :class:`OutputConflict` and is left alone;
    a finished one is replaced only with ``overwrite`` (``s2s predict --no-resume``), else it is an
    :class:`OutputConflict` too.  The new files get the process umask's modes."""
    import matplotlib.pyplot as plt

    from s2s.files import write_json
    from s2s.io import write_extxyz

    final = Path(out_dir) / pred.name

    def conflict() -> str:
        state = output_state(out_dir, pred.name)
        if state == "foreign":
            raise OutputConflict(
                f"{final}: exists and was not written by s2s predict; left alone (move it away or choose another --out)"
            )
        if state == "done" and not overwrite:
            raise OutputConflict(f"{final}: a finished s2s predict output exists; pass --no-resume to replace it")
        return state

    conflict()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    old = final.parent / f".{final.name}.replaced-{os.getpid()}"
    for leftover in (tmp, old):  # this process's own, from an earlier failed attempt
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
    try:
        tmp.mkdir()
        sig = pred.summary["candidates"]["signatures"]
        rk = (pred.summary.get("ranking") or {}).get("candidates")
        comments = [
            f"sample={i} n_atoms={e.n_atoms} signature={sig[i]} source={safe_name(pred.name)} consensus={int(i == 0)}"
            + (f" rank={rk[i]['rank']} draw={rk[i]['draw']} spectrum_mse={rk[i]['spectrum_mse']:.6e}" if rk else "")
            for i, e in enumerate(pred.candidates)
        ]
        write_extxyz(tmp / XYZ, pred.candidates, comments)
        if png:
            fig = overview_figure(pred, ctx)
            fig.savefig(tmp / OVERVIEW, dpi=110)
            plt.close(fig)
        if html:
            (tmp / OVERVIEW_HTML).write_text(overview_html(pred), encoding="utf-8")
        write_json(tmp / SUMMARY, {WRITTEN_BY_KEY: WRITTEN_BY, **pred.summary})
        if conflict() == "done":  # checked again: the folder may have changed while we worked
            os.rename(final, old)
            try:
                os.rename(tmp, final)
            except OSError:
                os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_done(out_dir: Path, name: str) -> bool:
    """Whether ``out_dir/name`` is a finished ``s2s predict`` output (:func:`output_state`)."""
    return output_state(out_dir, name) == "done"


def signature_cn(signature: str) -> list[int]:
    """Per-shell coordination numbers of a shell signature (``"Si2|O6|Si6"`` -> [2, 6, 6]; ``-`` = 0), the
    counts :func:`s2s.ensembles.describe.signature` writes."""
    import re

    return [sum(int(n) for n in re.findall(r"[A-Z][a-z]?(\d+)", part)) for part in signature.split("|")]


def write_maps(out_dir: Path, inputs: Sequence[InputSpectrum]) -> None:
    """For spectrum images, once every pixel is done: ``<stem>/maps.npz`` with per-pixel CN1
    mean/std over the candidates, the consensus candidate's first- and second-shell CN (``consensus_cn1``,
    ``consensus_cn2``: candidate 0 of candidates.xyz), mean pairwise distance, OOD percentile and flag, the
    most frequent composition's share (NaN where a pixel failed or is not done)."""
    import json

    images: dict[str, list[InputSpectrum]] = {}
    for it in inputs:
        if len(it.meta.get("index", [])) == 2:
            images.setdefault(it.name.split("/")[0], []).append(it)
    for stem, items in images.items():
        ny, nx = items[0].meta["array_shape"][:2]
        if not any(is_done(out_dir, it.name) for it in items):
            continue
        keys = (
            "cn1_mean",
            "cn1_std",
            "cn2_mean",
            "mean_pairwise_distance",
            "ood_percentile",
            "ood_flag",
            "top_frequency",
            "consensus_cn1",
            "consensus_cn2",
        )
        maps = {k: np.full((ny, nx), np.nan) for k in keys}
        for it in items:
            f = Path(out_dir) / it.name / SUMMARY
            if not is_done(out_dir, it.name):
                continue
            s = json.loads(f.read_text())
            iy, ix = it.meta["index"]
            c = s["candidates"]
            vals = (
                c["cn"]["shell1"]["mean"],
                c["cn"]["shell1"]["std"],
                c["cn"]["shell2"]["mean"],
                c["spread"]["mean_pairwise_distance"],
                s["ood"]["percentile"],
                float(s["ood"]["flag"]),
                c["clusters"][0]["frequency"],
                *signature_cn(c["signatures"][0])[:2],
            )
            for k, v in zip(keys, vals):
                maps[k][iy, ix] = np.nan if v is None else v
        with atomic_path(Path(out_dir) / stem / "maps.npz", suffix=".npz") as tmp:
            np.savez(tmp, **maps)


__all__ = [
    "N_OVERLAY",
    "WRITTEN_BY",
    "WRITTEN_BY_KEY",
    "OutputConflict",
    "check_out_dir",
    "output_state",
    "OVERVIEW",
    "SUMMARY",
    "XYZ",
    "is_done",
    "overview_figure",
    "read_prediction",
    "signature_cn",
    "write_maps",
    "write_prediction",
]
