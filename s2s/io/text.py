"""Two-column text / CSV spectra (:func:`read_text`): energy in eV, intensity."""

from __future__ import annotations

import math
import re

import numpy as np

from s2s.io.raw import PathLike, RawSpectrum, SpectrumFileError, finish_spectrum, read_text_file

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


def _refuse_decimal_commas(path: PathLike, header: list[tuple[int, str]], data: list[tuple[int, str]]) -> None:
    """With ``,`` between columns, a decimal comma (``532,2,283`` for 532.2 and 283) splits a number in
    two and shifts the columns: refuse what shows it.  A data line with more fields than the column-name
    line (the last header line, when it has commas) is an error naming the line; without such a header,
    lines of more than two fields that are all whole numbers (no ``.`` or exponent anywhere) are too."""
    names = None
    if header:
        hno, h = header[-1]
        h = h.lstrip("#%!/ ").strip()
        if "," in h and not any(_is_number(t) for t in _split(h, ",") if t):
            names = (hno, len(_split(h, ",")))
    if names is not None:
        hno, n_named = names
        for no, s in data:
            n = len(_split(s, ","))
            if n > n_named:
                raise SpectrumFileError(
                    path,
                    f"line {no}: {n} comma-separated fields, but the header (line {hno}) names {n_named} columns: "
                    f"decimal commas in a comma-separated file are ambiguous ({s[:40]!r}); use '.' as the decimal "
                    "mark, or ';' or tabs between columns",
                )
        return
    fields = [_split(s, ",") for _, s in data]
    if all(len(f) > 2 for f in fields) and all(re.fullmatch(r"[+-]?\d+", t) for f in fields for t in f):
        no, s = data[0]
        raise SpectrumFileError(
            path,
            f"line {no}: {len(fields[0])} comma-separated whole numbers ({s[:40]!r}): decimal commas in a "
            "comma-separated file are ambiguous; use '.' as the decimal mark, ';' or tabs between columns, "
            "or add a header line naming every column (e.g. 'energy,intensity,error')",
        )


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
    text = read_text_file(path)
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
    if delimiter == ",":
        _refuse_decimal_commas(path, header, data)

    # energy unit stated in the column-name line (the last header line before the data)?
    if header and energy_unit == "eV":
        no, h = header[-1]
        if re.search(r"(?<![A-Za-z])keV(?![A-Za-z])", h):
            raise SpectrumFileError(
                path,
                f"column header (line {no}) says the energies are in keV; convert them to eV, or pass "
                "--energy-unit keV (s2s predict) / energy_unit='keV' (read_text)",
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
        raise SpectrumFileError(path, f"line {first_no}: found 1 column, expected at least 2 (energy in eV, intensity)")
    if max(ie, iy) >= ncol:
        raise SpectrumFileError(
            path, f"line {first_no}: {ncol} columns, but column {max(ie, iy)} (0-based) was asked for"
        )
    e = np.empty(len(data))
    y = np.empty(len(data))
    for k, (no, s) in enumerate(data):
        toks = _split(s, delimiter)
        if len(toks) != ncol:
            hint = " (decimal commas in a comma-separated file?)" if delimiter == "," else ""
            raise SpectrumFileError(
                path, f"line {no}: {len(toks)} columns, expected {ncol} (as on line {first_no}){hint}"
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
    return finish_spectrum(e, y, path, meta)


__all__ = ["read_text"]
