"""SiteRecord: one excited O site of the s2s dataset (:mod:`s2s.dataset`) with its spectrum on the
200-point grid (eV, unit area), its local :class:`~s2s.environment.Environment` (Å) and its provenance.

Also the labels a record may carry (:data:`SPLITS`, :data:`FIDELITIES`, :data:`SIMULATOR_FIDELITY`), the
fidelity flag a model with ``ModelConfig.fidelity_input`` reads (:func:`fidelity_flag`, :func:`fidelity_flags`), the
composition x = O/Si of a formula (:func:`x_from_formula`) and the canonical JSON text in which records and
datasets store and compare their metadata (:func:`canonical_json`).  :mod:`s2s.dataset` re-exports them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2s.environment import Environment
from s2s.spectrum import N_GRID  # the grid of every record

#: Allowed split labels ("" = not assigned to a split).
SPLITS: tuple[str, ...] = ("train", "test", "")
#: Spectrum fidelities: the fast semi-empirical simulator the open dataset was built with, and
#: first-principles core-hole methods (what users' spectra are compared with).
FIDELITIES: tuple[str, ...] = ("xtb", "reference", "translated")
#: simulator name prefix -> fidelity (:attr:`SiteRecord.fidelity`)
SIMULATOR_FIDELITY: dict[str, str] = {
    "xtb": "xtb",
    "gpaw": "reference",
    "castep": "reference",
    "vasp": "reference",
    "translated": "translated",  # xTB spectra relabelled by the translator (s2s.forward.translate)
}
#: fidelity -> the model's fidelity flag (``ModelConfig.fidelity_input``): 1.0 for a first-principles spectrum
#: (a translated one stands in for it), 0.0 for xTB; an unknown simulator ("") reads as xTB, as in
#: :func:`s2s.simulate.reference_sites.dataset_of_fidelity`.
FIDELITY_FLAG: dict[str, float] = {"xtb": 0.0, "reference": 1.0, "translated": 1.0, "": 0.0}


def fidelity_flag(fidelity: str) -> float:
    """The fidelity flag (:data:`FIDELITY_FLAG`) of a record's :attr:`SiteRecord.fidelity`."""
    try:
        return FIDELITY_FLAG[fidelity]
    except KeyError:
        raise ValueError(f"fidelity_flag: expected one of {tuple(FIDELITY_FLAG)}, got {fidelity!r}") from None


def fidelity_flags(fidelity: Any, m: int) -> np.ndarray | None:
    """A fidelity flag in [0, 1] (a number, or one per spectrum (m,)) as float32 flags (m,); None stays None."""
    if fidelity is None:
        return None
    f = np.asarray(fidelity, dtype=np.float64)
    if f.ndim > 1 or (f.ndim == 1 and f.shape != (m,)):
        raise ValueError(f"fidelity must be one number or one per spectrum ({m},), got shape {f.shape}")
    if not np.all(np.isfinite(f)) or np.any(f < 0.0) or np.any(f > 1.0):
        raise ValueError("fidelity flags must lie in [0, 1] (0 = xTB, 1 = first principles)")
    return np.ascontiguousarray(np.broadcast_to(f, (m,)), dtype=np.float32)


def _json_default(obj: Any) -> Any:
    """JSON encoder for numpy scalars/arrays and tuples found in metadata."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def canonical_json(obj: Any, what: str) -> str:
    """Sorted-key JSON text of metadata (numpy scalars and arrays, sets allowed; NaN kept), the form records and
    datasets store and compare; ``ValueError`` naming ``what`` when ``obj`` cannot be written as JSON."""
    try:
        return json.dumps(obj, default=_json_default, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None


def x_from_formula(formula: str) -> float:
    """Composition x = n(O)/n(Si) of a formula (``inf`` without Si, ``nan`` if unparsable)."""
    from pymatgen.core import Composition

    try:
        comp = Composition(formula)
    except Exception:  # noqa: BLE001 - pymatgen raises several types
        return math.nan
    n_si, n_o = comp["Si"], comp["O"]
    return float(n_o / n_si) if n_si > 0 else math.inf


@dataclass(eq=False)
class SiteRecord:
    """One excited O site: its spectrum, environment and provenance.

    Attributes
    ----------
    spectrum : (200,) float array on :data:`s2s.spectrum.GRID` (eV), unit area.
    environment : the local environment (excited O first, at the origin, Å).
    structure_id : id of the crystal structure (key of ``Dataset.structures``).
    site_index : index of the excited O in that structure.
    multiplicity : number of symmetry-equivalent O sites this record stands for.
    formula : reduced formula of the structure, e.g. ``"SiO2"``.
    x : composition x in SiO_x (O/Si ratio); computed from ``formula`` if not given.
    source : where the structure came from (e.g. ``"aflow-prototype"``, ``"pyxtal+chgnet"``).
    simulator : name of the spectrum simulator (e.g. ``"xtb-gfn1"``, ``"castep"``).
    settings : simulator settings (JSON-serialisable dict).
    split : ``"train"``, ``"test"`` or ``""``.
    meta : free-form JSON-serialisable extras.
    """

    spectrum: np.ndarray
    environment: Environment
    structure_id: str
    site_index: int
    multiplicity: int = 1
    formula: str = ""
    x: float = math.nan
    source: str = ""
    simulator: str = ""
    settings: dict = field(default_factory=dict)
    split: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = np.asarray(self.spectrum, dtype=np.float64)
        if spec.shape != (N_GRID,):
            raise ValueError(
                f"SiteRecord {self.structure_id}:{self.site_index}: spectrum must have shape "
                f"({N_GRID},) on the grid, got {spec.shape}"
            )
        if not np.all(np.isfinite(spec)):
            raise ValueError(f"SiteRecord {self.structure_id}:{self.site_index}: spectrum has NaN/inf")
        self.spectrum = spec
        if not isinstance(self.environment, Environment):
            raise TypeError(
                f"SiteRecord {self.structure_id}:{self.site_index}: environment must be an "
                f"s2s.environment.Environment, got {type(self.environment).__name__}"
            )
        self.structure_id = str(self.structure_id)
        if not self.structure_id:
            raise ValueError("SiteRecord: structure_id must be a non-empty string")
        self.site_index = int(self.site_index)
        self.multiplicity = int(self.multiplicity)
        if self.site_index < 0 or self.multiplicity < 1:
            raise ValueError(
                f"SiteRecord {self.structure_id}: site_index must be >= 0 and multiplicity >= 1, "
                f"got {self.site_index}, {self.multiplicity}"
            )
        if self.split not in SPLITS:
            raise ValueError(f"SiteRecord {self.structure_id}:{self.site_index}: split must be one of {SPLITS}")
        self.x = float(self.x)
        if math.isnan(self.x) and self.formula:
            self.x = x_from_formula(self.formula)
        self.settings = dict(self.settings)
        self.meta = dict(self.meta)
        canonical_json(self.settings, "SiteRecord.settings")
        canonical_json(self.meta, "SiteRecord.meta")

    @property
    def composition(self) -> dict[str, Any]:
        """``{"formula": ..., "x": O/Si}``."""
        return {"formula": self.formula, "x": self.x}

    @property
    def fidelity(self) -> str:
        """``"xtb"``, ``"reference"`` (first principles) or ``"translated"`` (an xTB spectrum relabelled by the
        translator, :mod:`s2s.forward.translate`), from :attr:`simulator`; ``""`` if unknown."""
        low = self.simulator.lower()
        return next((f for prefix, f in SIMULATOR_FIDELITY.items() if low.startswith(prefix)), "")

    @property
    def key(self) -> tuple[str, int]:
        """(structure_id, site_index): unique within a dataset built by one simulator."""
        return (self.structure_id, self.site_index)

    def __eq__(self, other: object) -> bool:
        """Exact equality of every field (arrays element-wise, NaN equal to NaN)."""
        if not isinstance(other, SiteRecord):
            return NotImplemented
        e1, e2 = self.environment, other.environment
        return (
            np.array_equal(self.spectrum, other.spectrum)
            and np.array_equal(e1.species, e2.species)
            and np.array_equal(e1.coords, e2.coords)
            and np.array_equal(e1.shell, e2.shell)
            and canonical_json(e1.meta, "meta") == canonical_json(e2.meta, "meta")
            and self.structure_id == other.structure_id
            and self.site_index == other.site_index
            and self.multiplicity == other.multiplicity
            and self.formula == other.formula
            and (self.x == other.x or (math.isnan(self.x) and math.isnan(other.x)))
            and self.source == other.source
            and self.simulator == other.simulator
            and canonical_json(self.settings, "s") == canonical_json(other.settings, "s")
            and self.split == other.split
            and canonical_json(self.meta, "m") == canonical_json(other.meta, "m")
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


__all__ = [
    "FIDELITIES",
    "FIDELITY_FLAG",
    "SIMULATOR_FIDELITY",
    "fidelity_flag",
    "fidelity_flags",
    "SPLITS",
    "SiteRecord",
    "canonical_json",
    "x_from_formula",
]
