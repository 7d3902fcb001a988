"""EELS EMSA/MAS spectral data files (``.msa``, ``.ems``, ``.emsa``): :func:`read_msa`."""

from __future__ import annotations

import math
import re

import numpy as np

from s2s.io.raw import PathLike, RawSpectrum, SpectrumFileError, finish_spectrum, read_text_file

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
    text = read_text_file(path)
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
    return finish_spectrum(e * scale, y, path, meta)


__all__ = ["read_msa"]
