"""``s2s predict`` from a notebook, no files: :func:`predict_signal` takes a HyperSpy ``Signal1D`` (or anything
with the same ``axes_manager``/``data``, e.g. an exspy ``EELSSpectrum``) or a NumPy array with its energy axis,
and returns the :class:`~s2s.predict.context.Prediction` that ``s2s predict`` writes (same preparation, sampling,
ranking and summary; ``s2s.predict.write_prediction`` writes it as the CLI does).

>>> from s2s.predict import predict_signal
>>> pred = predict_signal(s)                      # a HyperSpy Signal1D in eV (energy-loss axis)
>>> pred = predict_signal(s, pixel=(12, 3))       # one pixel (x, y) of a spectrum image
>>> pred = predict_signal(y, energy_eV=e)         # NumPy: intensities (L,) and energies (L,)
>>> pred.candidates[0], pred.summary["consensus"] # the consensus candidate first, as in candidates.xyz
>>> s2s.plots.view_candidates(pred)               # rotatable 3D, works offline

The models are loaded once per (model, data, forward model) and kept (:func:`load_context`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from s2s.io.eels import energy_from_axis
from s2s.io.raw import SpectrumFileError
from s2s.predict.context import AUTO, DEFAULT_DATA, DEFAULT_MODEL, PredictContext, Prediction
from s2s.predict.inputs import ENERGY_UNITS, PredictInputError, array_inputs
from s2s.predict.prepare import prepare
from s2s.predict.run import predict_one

_CONTEXTS: dict[tuple, PredictContext] = {}


def load_context(
    model: str | os.PathLike = DEFAULT_MODEL,
    data: str | os.PathLike = DEFAULT_DATA,
    forward_model: str | os.PathLike | None = AUTO,
) -> PredictContext:
    """:meth:`PredictContext.load`, cached by the three paths (and the files' modification times);
    ``forward_model="auto"``: the forward model of the model's training fidelity (:func:`choose_forward`)."""
    forward = forward_model if forward_model in (None, AUTO) else Path(forward_model)
    paths = [Path(model), Path(data)] + ([forward] if isinstance(forward, Path) else [])
    key = tuple((str(p), p.stat().st_mtime_ns if p.exists() else None) for p in paths) + (str(forward),)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = PredictContext.load(Path(model), Path(data), forward)
    return _CONTEXTS[key]


def _from_signal(signal: Any, name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(energies in eV, data with the energy axis last, meta) of a HyperSpy-like signal."""
    am = signal.axes_manager
    sig_axes = list(getattr(am, "signal_axes", ()))
    if len(sig_axes) != 1:
        raise PredictInputError(
            name, f"expected a one-dimensional signal (Signal1D: one energy axis), got {len(sig_axes)} signal axes"
        )
    ax = sig_axes[0]
    axis = {"name": getattr(ax, "name", "signal axis"), "units": getattr(ax, "units", ""), "axis": np.asarray(ax.axis)}
    try:
        energy, cal = energy_from_axis(axis, name)
    except SpectrumFileError as exc:
        raise PredictInputError(name, exc.problem) from None
    data = np.asarray(signal.data)  # HyperSpy: navigation axes (reversed: ..., y, x), then the signal axis
    if data.shape[-1] != energy.size:
        raise PredictInputError(name, f"data of shape {data.shape} for an energy axis of {energy.size} points")
    if np.all(np.diff(energy) < 0):
        energy, data = energy[::-1].copy(), data[..., ::-1].copy()
    md = getattr(signal, "metadata", None)
    title = ""
    try:
        title = str(md.General.title)
    except AttributeError:
        pass
    return energy, data, {"format": "signal", "title": title, **cal}


def predict_signal(
    signal_or_array: Any,
    energy_eV: Any = None,
    *,
    pixel: tuple[int, int] | None = None,
    roi: tuple[int, int, int, int] | None = None,
    name: str = "signal",
    ctx: PredictContext | None = None,
    model: str | os.PathLike = DEFAULT_MODEL,
    data: str | os.PathLike = DEFAULT_DATA,
    forward_model: str | os.PathLike | None = AUTO,
    shift: str | float = "auto",
    background: bool = False,
    smooth_eV: float = 0.0,
    force: bool = False,
    energy_unit: str = "eV",
    **sample_kwargs: Any,
) -> Prediction:
    """Candidates for one spectrum held in memory (module docstring); returns the :class:`Prediction` of
    ``s2s predict`` (``name``, the prepared ``spectrum``, ``candidates`` with the consensus first,
    ``summary`` = summary.json, ``predicted`` forward-model spectra).

    signal_or_array : a HyperSpy ``Signal1D``-like object (energies from its signal axis: ``axis``, ``units``
        eV or keV; a missing or other unit is refused), or NumPy intensities (L,) with ``energy_eV`` (L,)
        (in ``energy_unit``), or (200,) on the model grid without ``energy_eV``.  A spectrum image
        (ny, nx, L) needs ``pixel`` = (x, y) or ``roi`` = (x0, x1, y0, y1) (half-open; the sum is used).
    ctx : a loaded :class:`PredictContext`; default :func:`load_context` (``model``, ``data``,
        ``forward_model``, by default the forward model of the model's training fidelity;
        ``forward_model=None``: no ranking, as ``--no-rank``).
    shift, background, smooth_eV, force : preparation as ``s2s predict`` (:func:`s2s.predict.prepare.prepare`).
    sample_kwargs : ``n_samples``, ``steps``, ``sampler``, ``eta``, ``guidance``, ``seed``, ``n_atoms`` of
        :func:`s2s.predict.run.predict_one` (defaults as ``s2s predict``).

    Raises :class:`~s2s.predict.inputs.PredictInputError` (a ``ValueError``) with one line for an input
    that ``s2s predict`` refuses.
    """
    if hasattr(signal_or_array, "axes_manager"):
        if energy_eV is not None:
            raise ValueError("predict_signal: a signal carries its energy axis; energy_eV is for NumPy arrays")
        energy, arr, meta = _from_signal(signal_or_array, name)
    else:
        arr = np.asarray(signal_or_array)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise PredictInputError(name, f"array of {arr.dtype}, expected real numbers")
        if energy_unit not in ENERGY_UNITS:
            raise ValueError(f"energy_unit must be one of {', '.join(ENERGY_UNITS)}, got {energy_unit!r}")
        energy = None if energy_eV is None else np.asarray(energy_eV, dtype=np.float64) * ENERGY_UNITS[energy_unit]
        meta = {"format": "array"}
        if energy is None and arr.shape[-1:] != (200,):
            raise PredictInputError(
                name, f"intensities of shape {arr.shape} without energy_eV: give the energies (L,) in eV"
            )
        if energy is not None and (energy.ndim != 1 or arr.shape[-1:] != energy.shape):
            raise PredictInputError(name, f"energy_eV of shape {energy.shape} for intensities of shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim not in (1, 3):
        raise PredictInputError(
            name, f"data of shape {arr.shape}: expected one spectrum (L,) or a spectrum image (ny, nx, L)"
        )
    if arr.ndim == 3 and pixel is None and roi is None:
        raise PredictInputError(
            name,
            f"a spectrum image {arr.shape[:2]}: choose pixel=(x, y) or roi=(x0, x1, y0, y1) "
            "(every pixel: s2s predict on the file, or loop over pixels)",
        )
    (item,) = array_inputs(Path(name), energy, arr, meta, pixel=pixel, roi=roi, what=meta["format"])
    item.source = name if arr.ndim == 1 else item.source
    ctx = ctx if ctx is not None else load_context(model, data, forward_model)
    prep = prepare(item, ctx.train_onset, shift=shift, background=background, smooth_eV=smooth_eV, force=force)
    info = {k: v for k, v in item.meta.items() if isinstance(v, (str, int, float, bool, list)) or v is None}
    return predict_one(
        ctx, item.name, prep.spectrum, prep_info={**prep.info, **info}, source=item.source, **sample_kwargs
    )


__all__ = ["load_context", "predict_signal"]
