"""CASTEP ELNES output: ``SEED.bands`` + ``SEED.eels_mat`` (or OptaDOS ``SEED.elnes_bin``) -> O K-edge.

* :func:`read_castep_bands` - band energies (Hartree in the file, eV here), k-point weights, Fermi level;
* :func:`read_castep_eels_mat` - the core-level transition matrix elements (Fortran unformatted);
* :func:`castep_elnes_spectrum` - the orientation-averaged 1s spectrum from both;
* :func:`read_castep_elnes` - all three from a seed or either file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2s.io.raw import (
    MissingSpectrumFileError,
    PathLike,
    RawSpectrum,
    SpectrumFileError,
    finish_spectrum,
    read_text_file,
)

#: Hartree in eV (CODATA 2018), the unit of CASTEP .bands energies.
HARTREE_EV = 27.211386245988


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
    if not all(math.isfinite(v) for v in out):
        raise SpectrumFileError(path, f"line {no}: {what} is not finite: {line.strip()[:60]!r}")
    return out[::-1]


def read_castep_bands(path: PathLike) -> CastepBands:
    """Read a CASTEP ``.bands`` file (header, then per k-point and spin the eigenvalues, Hartree)."""
    text = read_text_file(path)
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
    cell = [_floats_after(nxt("a unit cell vector")[1], 3, path, pos, "unit cell vector") for _ in range(3)]
    if any(len(v) != 3 for v in cell):
        raise SpectrumFileError(path, f"line {pos}: a unit cell vector needs 3 numbers")
    cell = np.array(cell)
    nb = int(neig.max())
    if neig.min() < 1 or nk * (2 + int(neig.sum())) > len(lines):  # before allocating (nk, ns, nb)
        raise SpectrumFileError(
            path,
            f"file ends early (truncated?): the header announces {nk} k-point(s) x {neig.tolist()} eigenvalues, "
            f"the file has only {len(lines)} lines (or the header is damaged)",
        )
    eig = np.full((nk, ns, nb), np.nan)
    kidx = np.zeros(nk, dtype=int)
    kpts = np.zeros((nk, 3))
    wts = np.zeros(nk)
    for ik in range(nk):
        no, line = nxt(f"'K-point' block {ik + 1} of {nk}")
        if not line.strip().startswith("K-point"):
            raise SpectrumFileError(
                path, f"line {no}: expected 'K-point' block {ik + 1} of {nk}, got {line.strip()[:60]!r}"
            )
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
        raise SpectrumFileError(p, f"implausible header: {norb} orbitals, {nb} bands, {nk} k-points, {ns} spins")
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
            where,
            f"no 1s core orbital for species={species}, ion={ion}; 1s orbitals present (species, ion): {available}",
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
    return finish_spectrum(energies, intensity, path if path is not None else "<castep>", meta)


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
        raise MissingSpectrumFileError(p, f"CASTEP ELNES: no {seed}.eels_mat or {seed}.elnes_bin next to it")
    if not bands.exists():
        raise MissingSpectrumFileError(mat, f"CASTEP ELNES: no {bands} for it")
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


__all__ = [
    "HARTREE_EV",
    "CastepBands",
    "CastepEelsMat",
    "castep_elnes_spectrum",
    "read_castep_bands",
    "read_castep_eels_mat",
    "read_castep_elnes",
]
