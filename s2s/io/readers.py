"""Spectrum files of any supported format -> :class:`~s2s.io.raw.RawSpectrum`; the one suffix table.

Every reader returns a :class:`RawSpectrum` ``(energy_eV, intensity, meta)`` - a named tuple,
so ``e, y, meta = read_text(path)`` works - with energies in eV, strictly increasing, finite.
``RawSpectrum.on_grid()`` puts it on the dataset's 200-point grid (via ``s2s.spectrum``),
ready for a :class:`s2s.dataset.SiteRecord`.  Measured spectra reach the model through
:func:`s2s.predict.prepare.prepare` (checks, background, onset alignment), which reads with these.

Formats (one module each)
-------------------------
* two-column text / CSV (:func:`~s2s.io.text.read_text`): whitespace, comma or semicolon
  separated, comment (``#``, ``%``, ``!``, ``//``) and header lines allowed, energy in eV;
* EELS EMSA/MAS ``.msa`` (:func:`~s2s.io.msa.read_msa`), Y or XY data;
* CASTEP ELNES output ``SEED.bands`` + ``SEED.eels_mat`` (:func:`~s2s.io.castep.read_castep_elnes`),
  as OptaDOS and castep_elnes_parser read them; OptaDOS's ``.elnes_bin`` is read too;
* the GPAW reference JSON of this project (:func:`~s2s.io.gpaw.read_gpaw_json`);
* an entry of an s2s dataset file (:func:`read_dataset_entry`);
* NumPy arrays of spectra ``.npy`` / ``.npz`` (:func:`~s2s.io.arrays.read_array`; many spectra, so
  not through :func:`read_spectrum`);
* Gatan DigitalMicrograph ``.dm3``/``.dm4`` and HyperSpy ``.hspy`` through rosettasciio (the optional
  extra ``s2s[eels]``; :func:`~s2s.io.eels.read_eels_file` for spectrum images, :func:`read_eels_spectrum`
  for one spectrum), energies from the file's calibration (eV; keV converted; other or no units refused).

:func:`read_spectrum` dispatches by :data:`SUFFIXES` and content.  A bad file raises
:class:`SpectrumFileError` (a ``ValueError``) whose message names the file and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2s.dataset import Dataset
from s2s.io.castep import (  # noqa: F401  (re-exported: s2s.io.readers is the readers' one import)
    HARTREE_EV,
    CastepBands,
    CastepEelsMat,
    castep_elnes_spectrum,
    read_castep_bands,
    read_castep_eels_mat,
    read_castep_elnes,
)
from s2s.io.eels import RSCIIO_PLUGINS, read_eels_file
from s2s.io.gpaw import read_gpaw_json
from s2s.io.msa import read_msa
from s2s.io.raw import MIN_POINTS, MIN_SPAN_EV, PathLike, RawSpectrum, SpectrumFileError, finish_spectrum  # noqa: F401
from s2s.io.text import read_text
from s2s.spectrum import GRID


# --------------------------------------------------------------------------- dataset entries
def read_dataset_entry(path: PathLike, index: int = 0) -> RawSpectrum:
    """Spectrum ``index`` of an s2s dataset file, on the grid (energies = the grid, eV)."""
    try:
        ds = Dataset.load(path)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, KeyError, TypeError) as exc:  # not HDF5, not the s2s layout
        raise SpectrumFileError(path, str(exc).replace(f"{path}: ", "")) from None
    if not -len(ds) <= index < len(ds):
        raise SpectrumFileError(path, f"entry {index} requested, the dataset has {len(ds)} entries")
    r = ds[index]
    meta = {
        "format": "dataset",
        "index": int(index),
        "structure_id": r.structure_id,
        "site_index": r.site_index,
        "simulator": r.simulator,
        "split": r.split,
    }
    return finish_spectrum(GRID.copy(), r.spectrum.copy(), path, meta)


# --------------------------------------------------------------------------- DM3/DM4/HSPY (rosettasciio)
def read_eels_spectrum(path: PathLike) -> RawSpectrum:
    """One spectrum of a ``.dm3``/``.dm4``/``.hspy`` file (:func:`s2s.io.eels.read_eels_file`); a line scan
    or spectrum image is refused (``s2s predict`` reads those pixel by pixel, or ``--pixel``/``--roi``)."""
    d = read_eels_file(path)
    if d.data.ndim != 1:
        raise SpectrumFileError(
            path,
            f"holds {d.data.shape[:-1]} spectra (a line scan or spectrum image), not one: read it with "
            "s2s.io.eels.read_eels_file (s2s predict takes every pixel, or --pixel x,y / --roi x0:x1,y0:y1)",
        )
    return finish_spectrum(d.energy, d.data, path, dict(d.meta))


# --------------------------------------------------------------------------- dispatcher
#: ``format=`` values of :func:`read_spectrum`.
FORMATS = ("auto", "text", "msa", "castep", "gpaw", "dataset", "dm", "hspy")
#: File suffix -> format: the one suffix table of s2s.  :func:`detect_format` trusts it except for
#: "text" suffixes, whose content is checked (an EMSA file named ``.txt`` is read as EMSA);
#: :func:`spectrum_files` takes a folder's files by it.  "array" files (NumPy) hold arrays of
#: spectra: :func:`s2s.io.arrays.read_array`.
SUFFIXES: dict[str, str] = {
    ".txt": "text",
    ".csv": "text",
    ".dat": "text",
    ".tsv": "text",
    ".msa": "msa",
    ".ems": "msa",
    ".emsa": "msa",
    ".bands": "castep",
    ".eels_mat": "castep",
    ".elnes_bin": "castep",
    ".json": "gpaw",
    ".h5": "dataset",
    ".hdf5": "dataset",
    ".npy": "array",
    ".npz": "array",
    ".dm3": "dm",
    ".dm4": "dm",
    ".hspy": "hspy",
}
assert set(RSCIIO_PLUGINS) <= set(SUFFIXES)
#: CASTEP files that only complete a ``SEED.bands`` (read through it).
_CASTEP_COMPANIONS = (".eels_mat", ".elnes_bin")


def detect_format(path: PathLike) -> str:
    """The format of ``path`` (a :data:`SUFFIXES` value): by its extension, else (also for text
    extensions) by its first bytes; ``"text"`` when nothing else fits."""
    p = Path(path)
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt and fmt != "text":
        return fmt
    if not p.exists():
        if p.with_name(p.name + ".bands").exists():
            return "castep"  # a CASTEP seed name
        raise FileNotFoundError(f"spectrum file not found: {p}")
    with open(p, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"\x89HDF"):
        return "dataset"
    s = head.lstrip().decode("latin-1")
    if s.upper().startswith("#FORMAT") and "EMSA" in s.upper()[:200]:
        return "msa"
    if s.startswith("{"):
        return "gpaw"
    if s.startswith("Number of k-points"):
        return "castep"
    return "text"


def read_spectrum(path: PathLike, format: str = "auto", **kwargs: Any) -> RawSpectrum:  # noqa: A002
    """Read a spectrum in any supported format.

    ``format``: ``"auto"`` (by extension, then content), ``"text"``, ``"msa"``, ``"castep"``
    (a seed, ``.bands`` or ``.eels_mat``), ``"gpaw"``, ``"dataset"`` (``index=`` selects the
    entry), ``"dm"`` or ``"hspy"`` (one spectrum; rosettasciio).  Keyword arguments go to the reader.
    """
    if format not in FORMATS:
        raise ValueError(f"read_spectrum: format must be one of {FORMATS}, got {format!r}")
    if format == "auto":
        format = detect_format(path)  # noqa: A001
    if format == "array":
        raise SpectrumFileError(
            path,
            "a NumPy file holds arrays of spectra: read it with s2s.io.arrays.read_array "
            "(s2s predict takes it as it is)",
        )
    readers = {
        "text": read_text,
        "msa": read_msa,
        "castep": read_castep_elnes,
        "gpaw": read_gpaw_json,
        "dataset": read_dataset_entry,
        "dm": read_eels_spectrum,
        "hspy": read_eels_spectrum,
    }
    return readers[format](path, **kwargs)


def spectrum_files(folder: PathLike) -> list[Path]:
    """The spectrum files of a folder (not recursive, sorted): every suffix of :data:`SUFFIXES`,
    hidden files left out, a CASTEP ``SEED.eels_mat``/``.elnes_bin`` only when no ``SEED.bands``
    (which reads the pair) is there.  Raises ``FileNotFoundError`` naming the folder if none."""
    q = Path(folder)
    files = []
    for f in sorted(q.iterdir()):
        suf = f.suffix.lower()
        if not f.is_file() or f.name.startswith(".") or suf not in SUFFIXES:
            continue
        if suf in _CASTEP_COMPANIONS and f.with_suffix(".bands").exists():
            continue
        files.append(f)
    if not files:
        raise FileNotFoundError(f"{q}: folder has no spectrum files ({', '.join(SUFFIXES)})")
    return files


__all__ = [
    "FORMATS",
    "HARTREE_EV",
    "SUFFIXES",
    "CastepBands",
    "CastepEelsMat",
    "RawSpectrum",
    "SpectrumFileError",
    "castep_elnes_spectrum",
    "detect_format",
    "read_castep_bands",
    "read_castep_eels_mat",
    "read_castep_elnes",
    "read_dataset_entry",
    "read_eels_file",
    "read_eels_spectrum",
    "read_gpaw_json",
    "read_msa",
    "read_spectrum",
    "read_text",
    "spectrum_files",
]
