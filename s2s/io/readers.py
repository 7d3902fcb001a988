"""Readers that bring foreign O K-edge spectra into s2s.

Every reader returns a :class:`RawSpectrum` ``(energy_eV, intensity, meta)`` - a named tuple,
so ``e, y, meta = read_text(path)`` works - with energies in eV, strictly increasing, finite.
``RawSpectrum.on_grid()`` puts it on the dataset's 200-point grid (via ``s2s.spectrum``),
ready for a :class:`s2s.dataset.SiteRecord`.

Formats
-------
* two-column text / CSV (:func:`read_text`): whitespace, comma or semicolon separated,
  comment (``#``, ``%``, ``!``, ``//``) and header lines allowed, energy in eV;
* EELS EMSA/MAS ``.msa`` (:func:`read_msa`), Y or XY data;
* CASTEP ELNES output ``SEED.bands`` + ``SEED.eels_mat`` (:func:`read_castep_elnes`), as
  OptaDOS and castep_elnes_parser read them; OptaDOS's ``.elnes_bin`` is read too;
* the GPAW reference JSON of this project (:func:`read_gpaw_json`);
* an entry of an s2s dataset file (:func:`read_dataset_entry`).

:func:`read_spectrum` dispatches by extension and content.  A bad file raises
:class:`SpectrumFileError` (a ``ValueError``) whose message names the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from s2s.spectrum import N_GRID, SpectrumError, onset_shift, spectrum_on_grid

#: Hartree in eV (CODATA 2018), the unit of CASTEP .bands energies.
HARTREE_EV = 27.211386245988
#: Fewest points a spectrum may have.
MIN_POINTS = 5
#: Smallest energy span (eV) accepted; an O K-edge spectrum in keV spans ~0.01-0.05.
MIN_SPAN_EV = 1.0

PathLike = str | os.PathLike


class SpectrumFileError(SpectrumError):
    """A spectrum file cannot be read; the message names the file and the problem.

    A :class:`s2s.spectrum.SpectrumError` (hence a ``ValueError``).
    """

    def __init__(self, path: PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class RawSpectrum(NamedTuple):
    """A spectrum as read: energies (eV, increasing), intensities, and metadata."""

    energy: np.ndarray
    intensity: np.ndarray
    meta: dict

    def on_grid(self, shift_eV: float | str = 0.0) -> np.ndarray:
        """The spectrum on the dataset grid (200 points, -1..18.9 eV, unit area), for a SiteRecord.

        ``shift_eV`` is subtracted from the energies first: ``0`` (default) for spectra whose
        energies are already relative to the onset/Fermi level (CASTEP, GPAW, simulated),
        a number, or ``"onset"`` to estimate it with :func:`s2s.spectrum.onset_shift` (measured
        spectra in absolute energy loss).  Uses :func:`s2s.spectrum.spectrum_on_grid`
        (cubic spline, unit area); raises ``SpectrumError`` naming the file.
        """
        source = str(self.meta.get("path", "<spectrum>"))
        if shift_eV == "onset":
            shift_eV = onset_shift(self.energy, self.intensity, source=source)
        elif isinstance(shift_eV, str):
            raise ValueError(f"on_grid: shift_eV must be a number or 'onset', got {shift_eV!r}")
        return spectrum_on_grid(self.energy, self.intensity, source=source, shift_eV=float(shift_eV))


# --------------------------------------------------------------------------- shared checks
def _finish(energy: Any, intensity: Any, path: PathLike, meta: dict) -> RawSpectrum:
    """Validate and return: enough points, finite, strictly monotonic (sorted up), eV scale."""
    e = np.asarray(energy, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if e.ndim != 1 or e.shape != y.shape:
        raise SpectrumFileError(path, f"energy and intensity differ in shape: {e.shape} vs {y.shape}")
    if e.size == 0:
        raise SpectrumFileError(path, "no data points (empty spectrum)")
    if e.size < MIN_POINTS:
        raise SpectrumFileError(path, f"only {e.size} data points, need at least {MIN_POINTS}")
    for name, a in (("energy", e), ("intensity", y)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise SpectrumFileError(path, f"{name} has NaN/inf values (first at data point {bad[0] + 1})")
    d = np.diff(e)
    if np.all(d < 0):
        e, y, d = e[::-1].copy(), y[::-1].copy(), -d[::-1]
    if not np.all(d > 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise SpectrumFileError(
            path,
            f"energies are not strictly increasing (data point {i + 2}: {e[i + 1]:g} after {e[i]:g})",
        )
    span = e[-1] - e[0]
    if span < MIN_SPAN_EV:
        raise SpectrumFileError(
            path,
            f"energies span only {span:.4g} ({e[0]:.6g} to {e[-1]:.6g}); energies must be in eV - "
            "are they in keV? (an O K-edge near 0.53 keV spans tens of eV)",
        )
    if not np.any(y != 0):
        raise SpectrumFileError(path, "intensity is zero everywhere")
    meta = {"path": str(path), **meta}
    return RawSpectrum(e, y, meta)


def _read_text_file(path: PathLike) -> str:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"spectrum file not found: {p}")
    if p.is_dir():
        raise SpectrumFileError(p, "is a directory, expected a file")
    raw = p.read_bytes()
    if not raw.strip():
        raise SpectrumFileError(p, "file is empty")
    if b"\x00" in raw[:4096]:
        raise SpectrumFileError(p, "looks like a binary file, expected text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------- text / CSV
_COMMENT = ("#", "%", "!", "//")
_SPLIT_ANY = re.compile(r"[;,\s]+")


def _to_float(tok: str, decimal_comma: bool) -> float:
    if decimal_comma:
        tok = tok.replace(",", ".")
    return float(tok)


def _is_number(tok: str) -> bool:
    try:
        float(tok.replace(",", "."))
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    toks = [t.strip() for t in line.split(delimiter)]
    if toks and toks[-1] == "":  # trailing delimiter
        toks = toks[:-1]
    return toks


def read_text(
    path: PathLike,
    energy_col: int | str = 0,
    intensity_col: int | str = 1,
    delimiter: str | None = "auto",
    energy_unit: str = "eV",
) -> RawSpectrum:
    """Read a column text/CSV spectrum (energy in eV, intensity).

    Parameters
    ----------
    energy_col, intensity_col : column index (0-based) or a column name from the header line.
    delimiter : ``"auto"`` (``;`` if present, else ``,``, else whitespace), ``None`` for
        whitespace, or an explicit character.  With ``;`` or whitespace delimiters a decimal
        comma (``530,5``) is accepted.
    energy_unit : ``"eV"`` (default) or ``"keV"`` (converted to eV).  A header that says keV
        while ``energy_unit="eV"`` is an error, as is an energy span below 1 eV.

    Lines starting with ``#``, ``%``, ``!`` or ``//`` and blank lines are skipped anywhere;
    non-numeric lines before the first numeric line are header lines.  Every data line must
    have the same number of columns.
    """
    if energy_unit not in ("eV", "keV"):
        raise ValueError(f"read_text: energy_unit must be 'eV' or 'keV', got {energy_unit!r}")
    text = _read_text_file(path)
    lines = text.splitlines()
    header: list[tuple[int, str]] = []
    data: list[tuple[int, str]] = []
    for no, line in enumerate(lines, start=1):
        s = line.strip().lstrip("\ufeff")
        if s.startswith(_COMMENT):
            if not data:
                header.append((no, s))
            continue
        s = s.split("#", 1)[0].strip()  # inline comment
        if not s:
            continue
        if not data:
            first = _SPLIT_ANY.split(s)[0]
            if not _is_number(first):
                header.append((no, s))
                continue
        data.append((no, s))
    if not data:
        raise SpectrumFileError(path, "no numeric data lines found (only header/comment lines)")

    first_no, first = data[0]
    if delimiter == "auto":
        delimiter = ";" if ";" in first else ("," if "," in first else None)
        if delimiter == "," and any(len(t.split()) > 1 for t in _split(first, ",")):
            delimiter = None  # "530,5 1,2": whitespace columns with decimal commas
    decimal_comma = delimiter != ","

    # energy unit stated in the column-name line (the last header line before the data)?
    if header and energy_unit == "eV":
        no, h = header[-1]
        if re.search(r"(?<![A-Za-z])keV(?![A-Za-z])", h):
            raise SpectrumFileError(
                path,
                f"column header (line {no}) says the energies are in keV; energies must be in eV "
                "(convert, or pass energy_unit='keV')",
            )

    def column(c: int | str, what: str) -> int:
        if isinstance(c, (int, np.integer)):
            return int(c)
        for no, h in reversed(header):
            names = [t.strip().strip("#").strip().lower() for t in _split(h.lstrip("#%!/ "), delimiter)]
            if c.lower() in names:
                return names.index(c.lower())
        raise SpectrumFileError(path, f"{what} column {c!r} not found in a header line")

    ie, iy = column(energy_col, "energy"), column(intensity_col, "intensity")
    ncol = len(_split(first, delimiter))
    if ncol < 2:
        raise SpectrumFileError(
            path, f"line {first_no}: found 1 column, expected at least 2 (energy in eV, intensity)"
        )
    if max(ie, iy) >= ncol:
        raise SpectrumFileError(
            path, f"line {first_no}: {ncol} columns, but column {max(ie, iy)} (0-based) was asked for"
        )
    e = np.empty(len(data))
    y = np.empty(len(data))
    for k, (no, s) in enumerate(data):
        toks = _split(s, delimiter)
        if len(toks) != ncol:
            raise SpectrumFileError(
                path, f"line {no}: {len(toks)} columns, expected {ncol} (as on line {first_no})"
            )
        for dst, col, name in ((e, ie, "energy"), (y, iy, "intensity")):
            tok = toks[col]
            try:
                v = _to_float(tok, decimal_comma)
            except ValueError:
                raise SpectrumFileError(path, f"line {no}: non-numeric {name} value {tok!r}") from None
            if not math.isfinite(v):
                raise SpectrumFileError(path, f"line {no}: {name} value is {tok!r} (NaN/inf not allowed)")
            dst[k] = v
    if energy_unit == "keV":
        e = e * 1000.0
    meta = {
        "format": "text",
        "header": [h for _, h in header],
        "columns": (ie, iy),
        "delimiter": delimiter if delimiter is not None else "whitespace",
        "energy_unit_in_file": energy_unit,
    }
    return _finish(e, y, path, meta)


# --------------------------------------------------------------------------- EMSA / MAS
_MSA_FORMAT_HINT = "expected a first line '#FORMAT : EMSA/MAS Spectral Data File'"
_MSA_KEY = re.compile(r"^#\s*([A-Za-z0-9_#]+)\s*(?:-\s*([^:]*?))?\s*:\s?(.*)$")


def _msa_float(meta: dict, key: str, path: PathLike) -> float:
    try:
        return float(str(meta[key]).split()[0].replace(",", "."))
    except (ValueError, IndexError):
        raise SpectrumFileError(path, f"#{key} is not a number: {meta[key]!r}") from None


def read_msa(path: PathLike) -> RawSpectrum:
    """Read an EMSA/MAS spectral data file (``.msa``), as written by EELS acquisition software.

    Header lines are ``#KEYWORD [-UNIT] : value``.  ``#DATATYPE`` Y (values only; channel
    energy = ``#OFFSET`` + i ``#XPERCHAN``) and XY (energy, value pairs) are read; data start
    after ``#SPECTRUM`` and must end with ``#ENDOFDATA``.  ``#XUNITS`` eV (default when
    absent) is used as is, keV is converted to eV (recorded in ``meta``); other units are
    refused.  ``meta["header"]`` holds every keyword.
    """
    text = _read_text_file(path)
    lines = text.splitlines()
    head: dict[str, str] = {}
    units: dict[str, str] = {}
    values: list[tuple[int, float]] = []
    in_data = ended = False
    for no, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = _MSA_KEY.match(s)
            if not m:
                if in_data:
                    raise SpectrumFileError(path, f"line {no}: unexpected line in the data: {s[:40]!r}")
                continue
            key, unit, val = m.group(1).upper(), (m.group(2) or "").strip(), m.group(3).strip()
            if key == "SPECTRUM":
                in_data = True
            elif key == "ENDOFDATA":
                ended = True
                break
            elif in_data:
                raise SpectrumFileError(path, f"line {no}: header keyword #{key} inside the data block")
            else:
                head[key] = val
                if unit:
                    units[key] = unit
            continue
        if not in_data:
            if "FORMAT" not in head:
                raise SpectrumFileError(path, f"no #FORMAT line; not an EMSA/MAS file ({_MSA_FORMAT_HINT})")
            raise SpectrumFileError(path, f"line {no}: data before #SPECTRUM: {s[:40]!r}")
        for tok in re.split(r"[,\s]+", s):
            if not tok:
                continue
            try:
                v = float(tok)
            except ValueError:
                raise SpectrumFileError(path, f"line {no}: non-numeric value {tok!r}") from None
            if not math.isfinite(v):
                raise SpectrumFileError(path, f"line {no}: value {tok!r} (NaN/inf not allowed)")
            values.append((no, v))
    fmt = head.get("FORMAT", "")
    if not fmt:
        raise SpectrumFileError(path, f"no #FORMAT line; not an EMSA/MAS file ({_MSA_FORMAT_HINT})")
    if "EMSA" not in fmt.upper():
        raise SpectrumFileError(path, f"#FORMAT is {fmt!r}, expected EMSA/MAS Spectral Data File")
    if not in_data:
        raise SpectrumFileError(path, "no #SPECTRUM line: the file has no data block")
    if not ended:
        raise SpectrumFileError(path, "no #ENDOFDATA line: the file is truncated")
    if not values:
        raise SpectrumFileError(path, "the data block is empty")

    datatype = head.get("DATATYPE", "Y").strip().upper()
    xunits = head.get("XUNITS", "").strip()
    scale = {"ev": 1.0, "kev": 1000.0, "": 1.0}.get(xunits.lower())
    if scale is None:
        raise SpectrumFileError(path, f"#XUNITS is {xunits!r}; expected eV (or keV)")
    v = np.array([x for _, x in values])
    if datatype == "XY":
        if v.size % 2:
            raise SpectrumFileError(
                path, f"#DATATYPE XY needs energy,value pairs; found an odd number of values ({v.size})"
            )
        e, y = v[0::2], v[1::2]
    elif datatype == "Y":
        for key in ("XPERCHAN", "OFFSET"):
            if key not in head:
                raise SpectrumFileError(path, f"#DATATYPE Y needs #{key}, which is missing")
        step, off = _msa_float(head, "XPERCHAN", path), _msa_float(head, "OFFSET", path)
        if step == 0:
            raise SpectrumFileError(path, "#XPERCHAN is 0")
        e, y = off + step * np.arange(v.size), v
    else:
        raise SpectrumFileError(path, f"#DATATYPE is {datatype!r}, expected Y or XY")
    if "NPOINTS" in head:
        npts = _msa_float(head, "NPOINTS", path)
        if int(round(npts)) != y.size:
            raise SpectrumFileError(
                path, f"#NPOINTS says {int(round(npts))} points, the data block has {y.size} (truncated?)"
            )
    meta = {
        "format": "msa",
        "header": head,
        "header_units": units,
        "xunits_in_file": xunits or "eV (assumed, no #XUNITS)",
        "signal_type": head.get("SIGNALTYPE", ""),
    }
    return _finish(e * scale, y, path, meta)


# --------------------------------------------------------------------------- CASTEP
@dataclass
class CastepBands:
    """Contents of a CASTEP ``.bands`` file (energies converted from Hartree to eV).

    ``eigenvalues_eV`` has shape (n_kpoints, n_spins, max(n_eigenvalues)), NaN-padded when the
    spin channels have different band counts; k-points are in file order (as OptaDOS reads them).
    """

    n_kpoints: int
    n_spins: int
    n_electrons: np.ndarray
    n_eigenvalues: np.ndarray
    fermi_eV: np.ndarray
    cell_bohr: np.ndarray
    kpoint_index: np.ndarray
    kpoints: np.ndarray
    weights: np.ndarray
    eigenvalues_eV: np.ndarray


def _floats_after(line: str, n: int | None, path: PathLike, no: int, what: str) -> list[float]:
    toks = line.split()
    out: list[float] = []
    for t in reversed(toks):
        try:
            out.append(float(t))
        except ValueError:
            break
        if n is not None and len(out) == n:
            break
    if not out:
        raise SpectrumFileError(path, f"line {no}: no number found for {what}: {line.strip()[:60]!r}")
    return out[::-1]


def read_castep_bands(path: PathLike) -> CastepBands:
    """Read a CASTEP ``.bands`` file (header, then per k-point and spin the eigenvalues, Hartree)."""
    text = _read_text_file(path)
    lines = text.splitlines()
    pos = 0

    def nxt(expect: str) -> tuple[int, str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1
        if pos >= len(lines):
            raise SpectrumFileError(path, f"file ends early (truncated?): expected {expect}")
        pos += 1
        return pos, lines[pos - 1]

    def header(prefix: str) -> tuple[int, str]:
        no, line = nxt(f"'{prefix} ...'")
        if not line.strip().lower().startswith(prefix.lower()):
            raise SpectrumFileError(
                path, f"line {no}: expected '{prefix} ...' (CASTEP .bands header), got {line.strip()[:60]!r}"
            )
        return no, line

    no, line = header("Number of k-points")
    nk = int(_floats_after(line, 1, path, no, "number of k-points")[0])
    no, line = header("Number of spin components")
    ns = int(_floats_after(line, 1, path, no, "number of spin components")[0])
    if nk < 1 or ns not in (1, 2):
        raise SpectrumFileError(path, f"bad header: {nk} k-points, {ns} spin components (expected >= 1 and 1 or 2)")
    no, line = header("Number of electrons")
    nel = np.array(_floats_after(line, ns, path, no, "number of electrons"))
    no, line = header("Number of eigenvalues")
    neig = np.array(_floats_after(line, ns, path, no, "number of eigenvalues"), dtype=int)
    no, line = header("Fermi energ")
    ef = np.array(_floats_after(line, ns, path, no, "Fermi energy"))
    nel, neig, ef = (np.broadcast_to(a, (ns,)).copy() if a.size == 1 else a for a in (nel, neig, ef))
    if nel.size != ns or neig.size != ns or ef.size != ns:
        raise SpectrumFileError(path, f"header values do not match {ns} spin component(s)")
    header("Unit cell vectors")
    cell = np.array([_floats_after(nxt("a unit cell vector")[1], 3, path, pos, "unit cell vector") for _ in range(3)])
    nb = int(neig.max())
    eig = np.full((nk, ns, nb), np.nan)
    kidx = np.zeros(nk, dtype=int)
    kpts = np.zeros((nk, 3))
    wts = np.zeros(nk)
    for ik in range(nk):
        no, line = nxt(f"'K-point' block {ik + 1} of {nk}")
        if not line.strip().startswith("K-point"):
            raise SpectrumFileError(path, f"line {no}: expected 'K-point' block {ik + 1} of {nk}, got {line.strip()[:60]!r}")
        vals = _floats_after(line, 5, path, no, "k-point")
        if len(vals) != 5:
            raise SpectrumFileError(path, f"line {no}: a K-point line needs index, 3 coordinates and a weight")
        kidx[ik], kpts[ik], wts[ik] = int(vals[0]), vals[1:4], vals[4]
        for js in range(ns):
            no, line = nxt(f"'Spin component' of k-point {ik + 1}")
            if not line.strip().startswith("Spin component"):
                raise SpectrumFileError(path, f"line {no}: expected 'Spin component', got {line.strip()[:60]!r}")
            for ib in range(int(neig[js])):
                no, line = nxt(f"eigenvalue {ib + 1} of {neig[js]} at k-point {ik + 1}, spin {js + 1}")
                try:
                    v = float(line)
                except ValueError:
                    raise SpectrumFileError(path, f"line {no}: non-numeric eigenvalue {line.strip()[:30]!r}") from None
                if not math.isfinite(v):
                    raise SpectrumFileError(path, f"line {no}: eigenvalue is {line.strip()!r} (NaN/inf)")
                eig[ik, js, ib] = v
    if wts.sum() <= 0:
        raise SpectrumFileError(path, "k-point weights sum to zero")
    return CastepBands(nk, ns, nel, neig, ef * HARTREE_EV, cell, kidx, kpts, wts, eig * HARTREE_EV)


@dataclass
class CastepEelsMat:
    """Core-level transition matrix elements of a CASTEP ``.eels_mat`` (or OptaDOS ``.elnes_bin``).

    ``matrix`` has shape (n_kpoints, n_spins, n_orbitals, n_bands, 3) (complex; atomic units,
    3 = Cartesian directions).  Per core orbital: ``species`` (species number), ``ion`` (ion
    number within the species), ``n`` (principal quantum number) and ``lm`` (CASTEP's
    angular channel: 1 = s, 2-4 = p, 5-9 = d, 10-16 = f).
    """

    n_orbitals: int
    n_bands: int
    n_kpoints: int
    n_spins: int
    species: np.ndarray
    ion: np.ndarray
    n: np.ndarray
    lm: np.ndarray
    matrix: np.ndarray
    layout: str
    endian: str
    extra: dict = field(default_factory=dict)


class _FortranRecords:
    """Sequential records of a Fortran unformatted file (4-byte markers) held in memory."""

    def __init__(self, buf: bytes, endian: str, path: PathLike) -> None:
        self.buf, self.endian, self.path, self.pos = buf, endian, path, 0

    def marker(self, at: int) -> int:
        return int(np.frombuffer(self.buf, dtype=f"{self.endian}i4", count=1, offset=at)[0])

    def record(self, what: str) -> bytes:
        if self.pos + 4 > len(self.buf):
            raise SpectrumFileError(self.path, f"file ends before the record '{what}' (truncated binary)")
        n = self.marker(self.pos)
        end = self.pos + 4 + n
        if n < 0 or end + 4 > len(self.buf):
            raise SpectrumFileError(
                self.path, f"record '{what}' claims {n} bytes but the file ends first (truncated binary)"
            )
        if self.marker(end) != n:
            raise SpectrumFileError(self.path, f"record '{what}': head and tail markers differ (corrupt file)")
        data = self.buf[self.pos + 4 : end]
        self.pos = end + 4
        return data

    def ints(self, what: str, count: int) -> np.ndarray:
        data = self.record(what)
        if len(data) != 4 * count:
            raise SpectrumFileError(
                self.path, f"record '{what}' has {len(data)} bytes, expected {count} 4-byte integers"
            )
        return np.frombuffer(data, dtype=f"{self.endian}i4").astype(np.int64)


def read_castep_eels_mat(path: PathLike) -> CastepEelsMat:
    """Read CASTEP's Fortran-unformatted ``.eels_mat`` (or OptaDOS ``.elnes_bin``).

    ``.eels_mat`` (CASTEP; OptaDOS "legacy" format): records ``n_orbitals``, ``n_bands``,
    ``n_kpoints``, ``n_spins`` (one integer each), then the arrays species, ion, n, lm
    (``n_orbitals`` integers each), then for each k-point, spin, orbital and band one record of
    3 complex(8) numbers (x, y, z).  ``.elnes_bin`` (OptaDOS) starts with a real(8) version and
    a header string, has the same 8 header records, then one record per k-point and spin
    holding ``elnes_mat(orb, band, xyz)`` in Fortran order.  Byte order is detected from the
    first record marker (CASTEP builds write big- or little-endian).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"CASTEP matrix-element file not found: {p}")
    buf = p.read_bytes()
    if len(buf) == 0:
        raise SpectrumFileError(p, "file is empty")
    if len(buf) < 8:
        raise SpectrumFileError(p, f"only {len(buf)} bytes: truncated binary")
    endian = layout = None
    for en in ("<", ">"):
        first = int(np.frombuffer(buf, dtype=f"{en}i4", count=1)[0])
        if first == 4:
            endian, layout = en, "eels_mat"
        elif first == 8:
            endian, layout = en, "elnes_bin"
        if endian:
            break
    if endian is None:
        raise SpectrumFileError(
            p, "not a Fortran unformatted .eels_mat/.elnes_bin file (first record marker is not 4 or 8)"
        )
    rec = _FortranRecords(buf, endian, p)
    extra: dict[str, Any] = {}
    if layout == "elnes_bin":
        extra["file_version"] = float(np.frombuffer(rec.record("file version"), dtype=f"{endian}f8")[0])
        extra["header"] = rec.record("header string").decode("latin-1").strip()
    norb = int(rec.ints("number of core orbitals", 1)[0])
    nb = int(rec.ints("number of bands", 1)[0])
    nk = int(rec.ints("number of k-points", 1)[0])
    ns = int(rec.ints("number of spins", 1)[0])
    if min(norb, nb, nk) < 1 or ns not in (1, 2):
        raise SpectrumFileError(
            p, f"implausible header: {norb} orbitals, {nb} bands, {nk} k-points, {ns} spins"
        )
    species = rec.ints("orbital species", norb)
    ion = rec.ints("orbital ions", norb)
    n = rec.ints("orbital principal quantum numbers", norb)
    lm = rec.ints("orbital angular channels", norb)

    ctype = np.dtype(f"{endian}c16")
    rest = len(buf) - rec.pos
    if layout == "eels_mat":
        n_rec, payload = nk * ns * norb * nb, 3 * 16
        per = "k-point, spin, orbital and band"
    else:
        n_rec, payload = nk * ns, norb * nb * 3 * 16
        per = "k-point and spin"
    size = payload + 8
    if rest < n_rec * size:
        raise SpectrumFileError(
            p,
            f"truncated binary: expected {n_rec} matrix-element records (one per {per}, "
            f"{payload} bytes each), found only {rest // size} complete",
        )
    rtype = np.dtype([("head", f"{endian}i4"), ("data", ctype, (payload // 16,)), ("tail", f"{endian}i4")])
    recs = np.frombuffer(buf, dtype=rtype, count=n_rec, offset=rec.pos)
    if np.any(recs["head"] != payload) or np.any(recs["tail"] != payload):
        raise SpectrumFileError(
            p,
            f"matrix-element records are not {payload}-byte records (one per {per}); "
            "the file does not match the .eels_mat layout",
        )
    data = recs["data"].astype(np.complex128)
    if layout == "eels_mat":
        mat = data.reshape(nk, ns, norb, nb, 3)
    else:  # Fortran order (orb, band, xyz) -> C array (xyz, band, orb)
        mat = data.reshape(nk, ns, 3, nb, norb).transpose(0, 1, 4, 3, 2)
    if not np.all(np.isfinite(mat)):
        raise SpectrumFileError(p, "matrix elements contain NaN/inf")
    return CastepEelsMat(norb, nb, nk, ns, species, ion, n, lm, np.ascontiguousarray(mat), layout, endian, extra)


def castep_elnes_spectrum(
    bands: CastepBands,
    mat: CastepEelsMat,
    *,
    species: int | None = None,
    ion: int | None = None,
    sigma_eV: float = 0.3,
    energies: np.ndarray | None = None,
    origin: str = "fermi",
    path: PathLike | None = None,
) -> RawSpectrum:
    """O K-edge (1s) spectrum from CASTEP band energies and matrix elements.

    I(E) = (2 / n_spins) sum_k w_k sum_s sum_{b unoccupied} (1/3) sum_{d=x,y,z} |M_{k s o b d}|^2
           G(E - (e_{k s b} - E_0); sigma)

    with w_k the k-point weights normalised to 1, ``o`` the chosen 1s core orbital (``n == 1``,
    ``lm == 1``; pick it with ``species``/``ion`` when the file holds several), unoccupied =
    ``e > E_F`` of that spin channel, G a unit-area Gaussian of standard deviation ``sigma_eV``
    and the origin E_0 the Fermi level (``origin="fermi"``, the paper's convention) or the
    lowest unoccupied eigenvalue (``origin="cbm"``).  This is the orientation-averaged
    (powder) spectrum of OptaDOS/castep_elnes_parser, up to a constant factor.
    ``energies`` defaults to -5 .. 30 eV in 0.05 eV steps (relative to E_0).
    """
    where = path
    if (mat.n_kpoints, mat.n_spins) != (bands.n_kpoints, bands.n_spins):
        raise SpectrumFileError(
            where,
            f".eels_mat has {mat.n_kpoints} k-points x {mat.n_spins} spins, .bands has "
            f"{bands.n_kpoints} x {bands.n_spins}: not from the same calculation",
        )
    if mat.n_bands > bands.eigenvalues_eV.shape[2]:
        raise SpectrumFileError(
            where, f".eels_mat has {mat.n_bands} bands, .bands only {bands.eigenvalues_eV.shape[2]}"
        )
    if origin not in ("fermi", "cbm"):
        raise ValueError(f"castep_elnes_spectrum: origin must be 'fermi' or 'cbm', got {origin!r}")
    sel = (mat.n == 1) & (mat.lm == 1)
    if species is not None:
        sel &= mat.species == species
    if ion is not None:
        sel &= mat.ion == ion
    available = [(int(s), int(i)) for s, i, n_, l_ in zip(mat.species, mat.ion, mat.n, mat.lm) if n_ == 1 and l_ == 1]
    if sel.sum() == 0:
        raise SpectrumFileError(
            where, f"no 1s core orbital for species={species}, ion={ion}; 1s orbitals present (species, ion): {available}"
        )
    if sel.sum() > 1:
        raise SpectrumFileError(
            where,
            f"{int(sel.sum())} 1s core orbitals match; choose one with species=, ion= from (species, ion) {available}",
        )
    o = int(np.flatnonzero(sel)[0])
    nb = mat.n_bands
    eps = bands.eigenvalues_eV[:, :, :nb]  # (nk, ns, nb)
    ef = bands.fermi_eV[None, :, None]
    unocc = np.isfinite(eps) & (eps > ef)
    if not unocc.any():
        raise SpectrumFileError(where, "no unoccupied bands above the Fermi level: cannot form a K-edge")
    e0 = np.broadcast_to(ef, eps.shape) if origin == "fermi" else np.full(eps.shape, eps[unocc].min())
    m2 = np.mean(np.abs(mat.matrix[:, :, o, :, :]) ** 2, axis=-1)  # (nk, ns, nb)
    w = bands.weights / bands.weights.sum()
    amp = (2.0 / bands.n_spins) * w[:, None, None] * m2 * unocc
    centres = (eps - e0)[unocc]
    amps = amp[unocc]
    if energies is None:
        energies = np.arange(-5.0, 30.0 + 1e-9, 0.05)
    energies = np.asarray(energies, dtype=np.float64)
    if sigma_eV <= 0:
        raise ValueError(f"castep_elnes_spectrum: sigma_eV must be > 0, got {sigma_eV}")
    intensity = np.zeros_like(energies)
    norm = 1.0 / (sigma_eV * math.sqrt(2 * math.pi))
    for a in range(0, centres.size, 4096):  # chunks keep memory at ~30 MB for big k-point sets
        c = centres[a : a + 4096]
        intensity += norm * np.exp(-0.5 * ((energies[:, None] - c[None, :]) / sigma_eV) ** 2) @ amps[a : a + 4096]
    meta = {
        "format": "castep",
        "orbital": {"species": int(mat.species[o]), "ion": int(mat.ion[o]), "n": 1, "lm": 1},
        "fermi_eV": bands.fermi_eV.tolist(),
        "origin": origin,
        "origin_eV": float(e0.flat[0]) if origin == "cbm" else bands.fermi_eV.tolist(),
        "sigma_eV": float(sigma_eV),
        "n_kpoints": bands.n_kpoints,
        "n_spins": bands.n_spins,
        "n_bands": nb,
        "max_state_eV": float(centres.max()),
        "eels_mat_layout": mat.layout,
    }
    return _finish(energies, intensity, path if path is not None else "<castep>", meta)


def _castep_pair(path: PathLike) -> tuple[Path, Path]:
    """(``SEED.bands``, ``SEED.eels_mat`` or ``SEED.elnes_bin``) from a seed or either file."""
    p = Path(path)
    seed = p.with_suffix("") if p.suffix in (".bands", ".eels_mat", ".elnes_bin") else p
    bands = seed.with_name(seed.name + ".bands")
    for ext in (".eels_mat", ".elnes_bin"):
        mat = seed.with_name(seed.name + ext)
        if mat.exists():
            break
    else:
        raise FileNotFoundError(f"CASTEP ELNES: no {seed}.eels_mat or {seed}.elnes_bin next to {p}")
    if not bands.exists():
        raise FileNotFoundError(f"CASTEP ELNES: no {bands} for {mat}")
    return bands, mat


def read_castep_elnes(path: PathLike, **kwargs: Any) -> RawSpectrum:
    """Read ``SEED.bands`` + ``SEED.eels_mat`` (give the seed or either file) and form the spectrum.

    Keyword arguments go to :func:`castep_elnes_spectrum` (``species``, ``ion``, ``sigma_eV``,
    ``energies``, ``origin``).  Energies are relative to the Fermi level by default.
    """
    bands_path, mat_path = _castep_pair(path)
    bands = read_castep_bands(bands_path)
    mat = read_castep_eels_mat(mat_path)
    raw = castep_elnes_spectrum(bands, mat, path=mat_path, **kwargs)
    raw.meta["bands_path"] = str(bands_path)
    return raw


# --------------------------------------------------------------------------- GPAW JSON
def read_gpaw_json(path: PathLike) -> RawSpectrum:
    """Read a GPAW reference spectrum JSON of this project (``data/reference/gpaw/*.json``).

    Required fields: ``energies_eV`` and ``intensity`` (equal-length lists); ``structure_id``
    and ``site_index`` and, if present, ``grid_spectrum`` (200 values) and every other field
    are passed on in ``meta`` (``grid_spectrum`` as an array).  The two lists are the stick
    spectrum (transition energies and strengths): sticks of degenerate levels (equal
    energies) are summed into one, ``meta["merged_sticks"]`` counts the ones merged.
    """
    text = _read_text_file(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpectrumFileError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise SpectrumFileError(path, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("energies_eV", "intensity", "structure_id", "site_index") if k not in obj]
    if missing:
        raise SpectrumFileError(
            path, f"missing field(s) {missing} (a GPAW reference JSON has structure_id, site_index, energies_eV, intensity)"
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
    return _finish(e, y, path, meta)


# --------------------------------------------------------------------------- dataset entries
def read_dataset_entry(path: PathLike, index: int = 0) -> RawSpectrum:
    """Spectrum ``index`` of an s2s dataset file, on the grid (energies = the grid, eV)."""
    from s2s.dataset import Dataset
    from s2s.spectrum import GRID

    ds = Dataset.load(path)
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
    return _finish(GRID.copy(), r.spectrum.copy(), path, meta)


# --------------------------------------------------------------------------- dispatcher
FORMATS = ("auto", "text", "msa", "castep", "gpaw", "dataset")
_EXT = {
    ".msa": "msa",
    ".ems": "msa",
    ".emsa": "msa",
    ".bands": "castep",
    ".eels_mat": "castep",
    ".elnes_bin": "castep",
    ".json": "gpaw",
    ".h5": "dataset",
    ".hdf5": "dataset",
}


def detect_format(path: PathLike) -> str:
    """Guess the format of ``path`` from its extension, else from its first bytes."""
    p = Path(path)
    fmt = _EXT.get(p.suffix.lower())
    if fmt:
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
    (a seed, ``.bands`` or ``.eels_mat``), ``"gpaw"`` or ``"dataset"`` (``index=`` selects the
    entry).  Keyword arguments go to the reader.
    """
    if format not in FORMATS:
        raise ValueError(f"read_spectrum: format must be one of {FORMATS}, got {format!r}")
    if format == "auto":
        format = detect_format(path)  # noqa: A001
    readers = {
        "text": read_text,
        "msa": read_msa,
        "castep": read_castep_elnes,
        "gpaw": read_gpaw_json,
        "dataset": read_dataset_entry,
    }
    return readers[format](path, **kwargs)
