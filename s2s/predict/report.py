"""Writing ``s2s predict``'s results: one folder per input spectrum, and reading it back.

* :func:`write_prediction` - ``candidates.xyz`` (extended XYZ, excited O first, per-atom ``shell``,
  best-ranked first), ``summary.json``, ``overview.png``
  (:func:`s2s.plots.predict.plot_prediction_overview`); the folder is built under a temporary name and
  renamed when complete, so it exists only when done.
* :func:`read_prediction` - an output folder back into (candidates, summary).
* :func:`write_maps` - for spectrum images, per-pixel maps ``<stem>/maps.npz``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2s.environment import Environment
from s2s.files import atomic_path
from s2s.plots.predict import plot_prediction_overview
from s2s.predict.context import PredictContext, Prediction
from s2s.predict.html import OVERVIEW_HTML, overview_html
from s2s.predict.inputs import InputSpectrum, safe_name

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
            fig = plot_prediction_overview(pred, ctx.train_spectra)
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
    "WRITTEN_BY",
    "WRITTEN_BY_KEY",
    "OutputConflict",
    "check_out_dir",
    "output_state",
    "OVERVIEW",
    "SUMMARY",
    "XYZ",
    "is_done",
    "read_prediction",
    "signature_cn",
    "write_maps",
    "write_prediction",
]
