"""The GPAW reference spectrum JSON of this project (``data/reference/gpaw/*.json``): :func:`read_gpaw_json`."""

from __future__ import annotations

import json

import numpy as np

from s2s.io.raw import PathLike, RawSpectrum, SpectrumFileError, finish_spectrum, read_text_file
from s2s.spectrum import N_GRID


def read_gpaw_json(path: PathLike) -> RawSpectrum:
    """Read a GPAW reference spectrum JSON of this project (``data/reference/gpaw/*.json``).

    Required fields: ``energies_eV`` and ``intensity`` (equal-length lists); ``structure_id``
    and ``site_index`` and, if present, ``grid_spectrum`` (200 values) and every other field
    are passed on in ``meta`` (``grid_spectrum`` as an array).  The two lists are the stick
    spectrum (transition energies and strengths): sticks of degenerate levels (equal
    energies) are summed into one, ``meta["merged_sticks"]`` counts the ones merged.
    """
    text = read_text_file(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpectrumFileError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise SpectrumFileError(path, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("energies_eV", "intensity", "structure_id", "site_index") if k not in obj]
    if missing:
        raise SpectrumFileError(
            path,
            f"missing field(s) {missing} (a GPAW reference JSON has structure_id, site_index, energies_eV, intensity)",
        )

    def arr(key: str) -> np.ndarray:
        try:
            a = np.asarray(obj[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise SpectrumFileError(path, f"field '{key}' is not a list of numbers") from None
        if a.ndim != 1:
            raise SpectrumFileError(path, f"field '{key}' must be a flat list, got shape {a.shape}")
        return a

    e, y = arr("energies_eV"), arr("intensity")
    if e.shape != y.shape:
        raise SpectrumFileError(path, f"'energies_eV' has {e.size} values, 'intensity' {y.size}")
    meta = {k: v for k, v in obj.items() if k not in ("energies_eV", "intensity")}
    meta["format"] = "gpaw"
    if e.size > 1 and np.all(np.isfinite(e)) and np.all(np.diff(e) >= 0) and np.any(np.diff(e) == 0):
        e_u, first = np.unique(e, return_index=True)  # degenerate sticks -> one stick, strengths summed
        y = np.add.reduceat(y, first)
        meta["merged_sticks"] = int(e.size - e_u.size)
        e = e_u
    if "grid_spectrum" in obj and obj["grid_spectrum"] is not None:
        g = arr("grid_spectrum")
        if g.shape != (N_GRID,) or not np.all(np.isfinite(g)):
            raise SpectrumFileError(path, f"field 'grid_spectrum' must be {N_GRID} finite values, got {g.size}")
        meta["grid_spectrum"] = g
    try:
        meta["site_index"] = int(obj["site_index"])
    except (TypeError, ValueError):
        raise SpectrumFileError(path, f"field 'site_index' is not an integer: {obj['site_index']!r}") from None
    meta["structure_id"] = str(obj["structure_id"])
    return finish_spectrum(e, y, path, meta)


__all__ = ["read_gpaw_json"]
