"""Settings and per-site results of the open xTB O K-edge simulator: what defines a calculation and its cache.

:class:`XtbSettings` splits into the fields that change the electronic structure
(:meth:`XtbSettings.calc_fields`, hashed by :meth:`XtbSettings.calc_key` into the cache directory
name) and the broadening / onset / gap threshold applied on load.  :class:`SiteResult` is one O
site's stick spectrum (energies in eV, relative to the lowest empty level) and its JSON record;
:func:`structure_hash` fingerprints a structure so a changed structure is recomputed.  The
calculation itself is :mod:`s2s.simulate.xtb`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from pymatgen.core import Structure

BOHR_ANGSTROM = 0.52917721067  # Å per Bohr
HARTREE_EV = 27.211386245988  # eV per Hartree
KELVIN_HARTREE = 3.166808578545117e-6  # Hartree per K

ALLOWED_ELEMENTS = frozenset({"Si", "O"})
VARIANTS = ("z+1", "ground")
SUPERCELLS = ("min_image", "diagonal")
ONSETS = ("lumo", "homo", "midgap", "edge")
EDGE_FRACTION = 0.1  # onset="edge": first energy where the broadened spectrum reaches 10 % of its maximum
PROJECTIONS = ("mulliken", "lowdin")

# Sticks kept in the cache: levels within this window (eV) around the onset
# reference, and weights above this fraction of the largest one.
STICK_WINDOW_EV = (-3.0, 30.0)
STICK_MIN_REL_WEIGHT = 1e-5


@dataclass(frozen=True)
class XtbSettings:
    """All choices of the simulator.

    Electronic-structure fields (they enter :meth:`calc_key`):

    method : tblite method name ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB").
    variant : "z+1" (excited O -> F, one SCF per site) or "ground" (no core
        hole, one SCF per structure).
    charge : total charge of the supercell; ``None`` = 0 (neutral cell; with
        "z+1" the extra electron half-fills the lowest empty level).
    min_length : supercell size criterion, Å (see ``supercell``).
    supercell : "min_image" (shortest lattice vector of the supercell >=
        min_length; fewest cells) or "diagonal" (each of n_i * a_i >= min_length).
    temperature : electronic temperature for the Fermi filling, K.
    max_iter : maximum SCF iterations.
    accuracy : tblite numerical accuracy (1.0 default; smaller = tighter).
    projection : "mulliken" or "lowdin" O-p projection.

    Spectrum fields (applied to the cached sticks; they enter :meth:`full_hash`):

    onset : energy zero, "lumo" | "homo" | "midgap" (see module docstring).
    gauss_fwhm : Gaussian FWHM, eV.
    lorentz_fwhm : Lorentzian FWHM at the onset, eV.
    lorentz_slope : added Lorentzian FWHM per eV above the onset (lifetime
        broadening growing with energy), eV/eV.
    min_gap : sites whose HOMO-LUMO gap is below this (eV) are flagged as
        failed ("gap collapse").
    """

    method: str = "GFN1-xTB"
    variant: str = "z+1"
    charge: int | None = None
    min_length: float = 9.0
    supercell: str = "min_image"
    temperature: float = 300.0
    max_iter: int = 250
    accuracy: float = 1.0
    projection: str = "mulliken"
    onset: str = "lumo"
    gauss_fwhm: float = 1.0
    lorentz_fwhm: float = 0.5
    lorentz_slope: float = 0.1
    min_gap: float = 0.1

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"XtbSettings.variant: expected one of {VARIANTS}, got {self.variant!r}")
        if self.onset not in ONSETS:
            raise ValueError(f"XtbSettings.onset: expected one of {ONSETS}, got {self.onset!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"XtbSettings.projection: expected one of {PROJECTIONS}, got {self.projection!r}")
        if self.supercell not in SUPERCELLS:
            raise ValueError(f"XtbSettings.supercell: expected one of {SUPERCELLS}, got {self.supercell!r}")
        if self.method not in ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB"):
            raise ValueError(f"XtbSettings.method: unknown tblite method {self.method!r}")
        for name in ("min_length", "temperature", "max_iter", "accuracy"):
            if not getattr(self, name) > 0:
                raise ValueError(f"XtbSettings.{name}: must be > 0, got {getattr(self, name)!r}")
        for name in ("gauss_fwhm", "lorentz_fwhm", "lorentz_slope", "min_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"XtbSettings.{name}: must be >= 0, got {getattr(self, name)!r}")
        if self.gauss_fwhm == 0 and self.lorentz_fwhm == 0 and self.lorentz_slope == 0:
            raise ValueError("XtbSettings: gauss_fwhm and lorentz_fwhm cannot both be 0")

    # -- derived ---------------------------------------------------------
    @property
    def total_charge(self) -> int:
        """Resolved total charge of the supercell (e)."""
        return 0 if self.charge is None else int(self.charge)

    def calc_fields(self) -> dict[str, Any]:
        """The fields that change the electronic structure (what is cached)."""
        return {
            "method": self.method,
            "variant": self.variant,
            "charge": self.total_charge,
            "min_length": float(self.min_length),
            "supercell": self.supercell,
            "temperature": float(self.temperature),
            "max_iter": int(self.max_iter),
            "accuracy": float(self.accuracy),
            "projection": self.projection,
        }

    def calc_key(self) -> str:
        """Stable 12-hex hash of :meth:`calc_fields`: the cache directory name."""
        return _stable_hash(self.calc_fields())

    def full_hash(self) -> str:
        """Stable 12-hex hash of every field (electronic + broadening)."""
        d = self.calc_fields()
        d.update(
            onset=self.onset,
            gauss_fwhm=float(self.gauss_fwhm),
            lorentz_fwhm=float(self.lorentz_fwhm),
            lorentz_slope=float(self.lorentz_slope),
            min_gap=float(self.min_gap),
        )
        return _stable_hash(d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "XtbSettings":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"XtbSettings.from_dict: unknown fields {sorted(unknown)}")
        return cls(**d)

    def with_(self, **kw: Any) -> "XtbSettings":
        """Copy with some fields changed."""
        return replace(self, **kw)


def _stable_hash(d: dict[str, Any]) -> str:
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class SiteResult:
    """Result for one O site.

    ok : False when the site is excluded; ``reason`` says why.
    sticks_e : (M,) level energies, eV, relative to the lowest empty level
        (the LUMO of the calculation, whatever ``onset`` is set to).
    sticks_w : (M,) O-p weight x empty fraction of each level.
    homo, lumo : eV, relative to the lowest empty level (so lumo == 0).
    gap : lumo - homo, eV.
    spectrum : (200,) on :data:`GRID`, unit area (``None`` when not ok).
    """

    structure_id: str
    site_index: int
    ok: bool
    reason: str = ""
    sticks_e: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sticks_w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    homo: float = float("nan")
    lumo: float = float("nan")
    gap: float = float("nan")
    spectrum: np.ndarray | None = None
    n_atoms: int = 0
    supercell: tuple = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # integer matrix P, rows: new vectors = P @ cell
    seconds: float = 0.0
    calc_key: str = ""
    meta: dict = field(default_factory=dict)
    calc_ok: bool | None = None  # status of the calculation itself (None: same as ok)

    def __post_init__(self) -> None:
        if self.calc_ok is None:
            self.calc_ok = self.ok

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the cached part (no broadened spectrum).

        ``ok``/``reason`` are those of the calculation; the checks that depend
        on spectrum settings (gap threshold) are redone by :func:`finalize`.
        """
        return {
            "structure_id": self.structure_id,
            "site_index": int(self.site_index),
            "ok": bool(self.calc_ok),
            "reason": "" if self.calc_ok else self.reason,
            "sticks_e": [round(float(x), 5) for x in self.sticks_e],
            "sticks_w": [float(f"{x:.5g}") for x in self.sticks_w],
            "homo": _json_float(self.homo),
            "lumo": _json_float(self.lumo),
            "gap": _json_float(self.gap),
            "n_atoms": int(self.n_atoms),
            "supercell": np.asarray(self.supercell, dtype=int).tolist(),
            "seconds": round(float(self.seconds), 3),
            "calc_key": self.calc_key,
            "meta": self.meta,
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> "SiteResult":
        """Inverse of :meth:`to_json_dict`: the sticks, no spectrum (:func:`s2s.simulate.xtb.finalize`
        broadens them under a settings)."""
        try:
            r = cls(
                structure_id=str(d["structure_id"]),
                site_index=int(d["site_index"]),
                ok=bool(d["ok"]),
                reason=str(d.get("reason", "")),
                sticks_e=np.asarray(d.get("sticks_e", []), dtype=np.float64),
                sticks_w=np.asarray(d.get("sticks_w", []), dtype=np.float64),
                homo=_from_json_float(d.get("homo")),
                lumo=_from_json_float(d.get("lumo")),
                gap=_from_json_float(d.get("gap")),
                n_atoms=int(d.get("n_atoms", 0)),
                supercell=_matrix_tuple(d.get("supercell", np.eye(3, dtype=int))),
                seconds=float(d.get("seconds", 0.0)),
                calc_key=str(d.get("calc_key", "")),
                meta=dict(d.get("meta", {})),
            )
        except KeyError as e:
            raise ValueError(f"SiteResult: missing field {e} in cached site record") from e
        return r


def _matrix_tuple(m: Any) -> tuple:
    a = np.asarray(m, dtype=int)
    if a.shape == (3,):
        a = np.diag(a)
    return tuple(tuple(int(x) for x in row) for row in a)


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 5)


def _from_json_float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def structure_hash(structure: Structure) -> str:
    """12-hex fingerprint of a structure (species, lattice and fractional coordinates to 1e-4).

    Stored with every cached site so that a changed structure under the same id is
    recomputed instead of silently reusing a stale spectrum.
    """
    frac = np.round(np.mod(structure.frac_coords, 1.0), 4) % 1.0
    payload = {
        "species": [s.specie.symbol for s in structure],
        "lattice": np.round(structure.lattice.matrix, 4).tolist(),
        "frac": frac.tolist(),
    }
    return _stable_hash(payload)
