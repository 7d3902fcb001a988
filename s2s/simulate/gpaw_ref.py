"""First-principles O K-edge reference spectra with GPAW (half core hole), run out of process.

GPAW comes from Debian (``apt-get install gpaw gpaw-data``) and lives under the system
``/usr/bin/python3``, not the project's venv, so this module never imports it: it prepares a
JSON input, runs the worker file ``s2s/simulate/_gpaw_worker.py`` (with the system python) in two stages (an MPI SCF,
then the serial
``gpaw.xas.XAS`` step) and parses the worker's JSON output.

Conventions (see docs/reference.md):

* energies are in eV **relative to the lowest unoccupied Kohn-Sham level of the core-hole
  calculation** (the first empty band, i.e. the onset); the raw sticks are kept;
* ``intensity`` is the orientation-averaged squared dipole matrix element (x+y+z), raw units;
* ``grid_spectrum``: sticks broadened with a Gaussian (``GPAWSettings.fwhm`` eV) on the s2s grid
  (-1.0 + 0.1 k eV, k = 0..199) and normalised to unit trapezoid area.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from s2s.files import atomic_write_text
from s2s.simulate.supercell import find_supercell, grid_points, kpoint_mesh, pw_band_count, shortest_lattice_vector
from s2s.spectrum import GRID, normalize

#: The worker script, a file of this package run by the system python (never imported here).
WORKER = Path(__file__).resolve().with_name("_gpaw_worker.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MPIRUN = "/usr/bin/mpirun.openmpi"  # GPAW (Debian) is built against OpenMPI; the venv may ship MPICH
BASIS_DIRS = ("/usr/share/gpaw-setups",)
RECORD_VERSION = 1


class WorkerInterrupted(RuntimeError):
    """The GPAW worker was killed by a signal: the run was interrupted, the site did not fail."""


@dataclasses.dataclass(frozen=True)
class GPAWSettings:
    """Everything that defines a reference calculation (recorded with every site)."""

    mode: str = "lcao"  # 'lcao' or 'pw'
    basis: str = "dzp"  # LCAO basis (also used as the initial guess in pw mode)
    xc: str = "PBE"
    h: float = 0.2  # real-space grid spacing, Å (lcao)
    grid_divisor: int = 4  # grid points per cell vector: the driver picks them from h, divisible by this
    ecut: float = 500.0  # plane-wave cutoff, eV (pw)
    nbands: str | int = "nao"  # 'nao' = every atomic orbital (lcao); an int or 'NNN%' in pw
    core_hole: str = "1s,0.5"  # gpaw-setup --core-hole
    setup_name: str = "hch1s"
    charge: float = 0.0  # extra charge on top of the setup's +0.5 (the excited electron is omitted)
    occupation_width: float = 0.0  # Fermi-Dirac width, eV (0 = integer occupations)
    min_image: float = 9.0  # shortest lattice vector of the supercell, Å
    # k-mesh of the XAS bands (non-self-consistent, at the SCF's density): N_i = ceil(length x |b_i|) points
    # along reciprocal vector b_i (1/Å, no 2 pi) of the supercell; 0 = the supercell's Gamma point only
    xas_kpt_length: float = 0.0
    # the k-mesh of the XAS bands reduced by time reversal (k and -k give the same sticks: the O 1s orbital and
    # r are real, so the dipole elements of psi_-k = psi_k* are complex conjugates); half the k-points
    xas_time_reversal: bool = False
    maxiter: int = 300
    scf_density: float = 1.0e-4  # SCF convergence: density change, electrons / electron (GPAW's default)
    scf_energy: float = 5.0e-4  # SCF convergence: energy change, eV / electron (GPAW's default)
    force_complex_dtype: bool = False  # pw mode at Gamma needs True (spurious occupied state)
    converge_bands: str | int = "occupied"  # pw: bands to converge (-N = all but the top N); lcao: exact
    fwhm: float = 0.5  # Gaussian FWHM (eV) used for grid_spectrum only; the raw sticks are kept
    mpi_procs: int = 2  # 1: SCF and XAS in one serial process (no restart file)
    nice: int = 15
    min_gap: float = 0.01  # eV; sanity check: HOMO-LUMO gap of the core-hole calculation must be open
    warn_gap: float = 0.3  # eV; smaller gaps pass but are flagged in sanity["warnings"]

    def __post_init__(self) -> None:
        if self.mode not in ("lcao", "pw"):
            raise ValueError(f"GPAWSettings.mode: expected 'lcao' or 'pw', got {self.mode!r}")
        if self.mode == "pw" and not self.force_complex_dtype:
            raise ValueError(
                "GPAWSettings: pw mode at Gamma needs force_complex_dtype=True "
                "(real wave functions give a spurious occupied state)"
            )
        if self.mode == "pw" and (self.nbands == "nao" or self.converge_bands == "occupied"):
            raise ValueError(
                "GPAWSettings: pw mode needs nbands ('auto', an int or 'NNN%') and converge_bands "
                "('auto' or e.g. -40): the empty bands are the spectrum and must be converged"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    #: fields that do not change the spectrum (how it runs, how it is broadened or checked).  xas_time_reversal
    #: pairs the sticks of k and -k into one of twice the weight: the broadened spectra agree to 6e-7 of their
    #: maximum (benchmarks/reference_settings.py compare k20 k20_tr; docs/reference.md)
    RUN_ONLY = ("mpi_procs", "nice", "fwhm", "min_gap", "warn_gap", "xas_time_reversal")

    def calc_fields(self) -> dict[str, Any]:
        """The fields that define the calculation (every field but :attr:`RUN_ONLY`)."""
        return {k: v for k, v in self.as_dict().items() if k not in self.RUN_ONLY}

    def calc_key(self) -> str:
        """Stable 12-hex SHA-256 of :meth:`calc_fields`: records computed alike share it."""
        text = json.dumps(self.calc_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- setup files


def default_setup_dir() -> Path:
    """Where the generated core-hole setup lives (``$S2S_GPAW_SETUP_DIR`` overrides)."""
    env = os.environ.get("S2S_GPAW_SETUP_DIR")
    return Path(env) if env else Path.home() / ".cache" / "s2s" / "gpaw-setups"


def gpaw_available(python: str = SYSTEM_PYTHON) -> bool:
    """True if ``python -c 'import gpaw'`` works (GPAW installed for the system python)."""
    if not Path(python).exists():
        return False
    r = subprocess.run([python, "-c", "import gpaw"], capture_output=True)
    return r.returncode == 0


def _find_basis(symbol: str, basis: str) -> Path:
    dirs = [d for d in os.environ.get("GPAW_SETUP_PATH", "").split(":") if d] + list(BASIS_DIRS)
    for d in dirs:
        for name in (f"{symbol}.{basis}.basis.gz", f"{symbol}.{basis}.basis"):
            if (Path(d) / name).exists():
                return Path(d) / name
    raise FileNotFoundError(f"GPAW basis {symbol}.{basis}.basis(.gz) not found in {dirs}; install gpaw-data")


def ensure_core_hole_setup(
    setup_dir: Path | str | None = None, settings: GPAWSettings = GPAWSettings(), symbol: str = "O"
) -> Path:
    """Generate the O half-core-hole PAW setup (and its LCAO basis) once; return the folder.

    Runs ``gpaw-setup O -f PBE --name=hch1s --core-hole=1s,0.5`` (about 1 s) and copies the
    standard ``O.dzp.basis`` to ``O.hch1s.dzp.basis.gz``: GPAW looks the basis up under the
    setup's name, and the core hole does not change the (valence) basis functions' purpose.
    """
    d = Path(setup_dir) if setup_dir is not None else default_setup_dir()
    d.mkdir(parents=True, exist_ok=True)
    setup_file = d / f"{symbol}.{settings.setup_name}.{settings.xc}"
    if not setup_file.exists():
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            cmd = [
                "gpaw-setup",
                symbol,
                "-f",
                settings.xc,
                f"--name={settings.setup_name}",
                f"--core-hole={settings.core_hole}",
            ]
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            made = Path(tmp) / setup_file.name
            if r.returncode != 0 or not made.exists():
                raise RuntimeError(f"{' '.join(cmd)} failed (rc={r.returncode}):\n{r.stderr[-2000:]}")
            os.replace(made, setup_file)
    basis_file = d / f"{symbol}.{settings.setup_name}.{settings.basis}.basis.gz"
    if not basis_file.exists():
        src = _find_basis(symbol, settings.basis)
        tmp_b = basis_file.with_suffix(f".tmp{os.getpid()}")
        if src.suffix == ".gz":
            shutil.copyfile(src, tmp_b)
        else:
            with open(src, "rb") as fi, gzip.open(tmp_b, "wb") as fo:
                shutil.copyfileobj(fi, fo)
        os.replace(tmp_b, basis_file)
    return d


# --------------------------------------------------------------------------- inputs


def prepare_input(
    structure, site_index: int, settings: GPAWSettings, setup_dir: Path | str, txt: str, reduce_cell: bool = False
) -> dict[str, Any]:
    """Worker input for exciting O ``site_index`` of a pymatgen ``structure``.

    Builds the supercell from :func:`find_supercell`; the excited atom is the image of
    ``site_index`` in the home cell.  ``reduce_cell``: describe the same periodic supercell by its Niggli-reduced
    vectors (same atoms, same Cartesian positions wrapped into it; GPAW's finite-difference stencils refuse some
    skewed cells, "You have a weird unit cell").  Returns a JSON-serialisable dict.
    """
    if not 0 <= site_index < len(structure):
        raise ValueError(f"prepare_input: site_index {site_index} out of range 0..{len(structure) - 1}")
    if structure[site_index].specie.symbol != "O":
        raise ValueError(f"prepare_input: site {site_index} is {structure[site_index].specie.symbol}, expected O")
    P = find_supercell(structure.lattice.matrix, settings.min_image)
    s = structure.copy()
    s.add_site_property("s2s_parent", list(range(len(s))))
    s.make_supercell(P)
    if reduce_cell:
        from pymatgen.core import Structure

        s = Structure(
            s.lattice.get_niggli_reduced_lattice(),
            s.species,
            s.cart_coords,
            coords_are_cartesian=True,
            to_unit_cell=True,
            site_properties=s.site_properties,
        )
    parents = np.asarray(s.site_properties["s2s_parent"])
    cand = np.flatnonzero(parents == site_index)
    # the image closest to the parent's Cartesian position (any image is equivalent)
    d = np.linalg.norm(s.cart_coords[cand] - structure[site_index].coords, axis=1)
    excited = int(cand[np.argmin(d)])
    nbands, converge = settings.nbands, settings.converge_bands
    if settings.mode == "pw" and (nbands == "auto" or converge == "auto"):
        nb, cb = pw_band_count([site.specie.symbol for site in s], s.volume)
        nbands = nb if nbands == "auto" else nbands
        converge = cb if converge == "auto" else converge
    return {
        "symbols": [site.specie.symbol for site in s],
        "positions": s.cart_coords.tolist(),
        "cell": s.lattice.matrix.tolist(),
        "excited_index": excited,
        "supercell_matrix": P.tolist(),
        "cell_reduced": bool(reduce_cell),
        "min_image_A": shortest_lattice_vector(s.lattice.matrix),
        "setup_dir": str(setup_dir),
        "setup_name": settings.setup_name,
        "mode": settings.mode,
        "basis": settings.basis,
        "xc": settings.xc,
        "h": settings.h,
        "gpts": grid_points(s.lattice.matrix, settings.h, settings.grid_divisor) if settings.mode == "lcao" else None,
        "convergence": {"density": settings.scf_density, "energy": settings.scf_energy},
        "xas_kpts": kpoint_mesh(s.lattice.matrix, settings.xas_kpt_length),
        "xas_time_reversal": bool(settings.xas_time_reversal),
        "ecut": settings.ecut,
        "nbands": nbands,
        "charge": settings.charge,
        "occupation_width": settings.occupation_width,
        "force_complex_dtype": settings.force_complex_dtype,
        "converge_bands": converge,
        "maxiter": settings.maxiter,
        "txt": txt,
    }


# --------------------------------------------------------------------------- results


def sanity_check(
    eigenvalues: np.ndarray,
    occupations: np.ndarray,
    n_valence: float,
    min_gap: float = 0.01,
    warn_gap: float = 0.3,
) -> dict[str, Any]:
    """Check the core-hole SCF: integer occupations, fully occupied bands = valence electrons / 2,
    and an open gap above them (>= ``min_gap`` eV; below ``warn_gap`` eV it passes with a warning).
    Returns a dict with ``passed``, ``warnings`` and the numbers."""
    eps = np.asarray(eigenvalues, float)
    f = np.asarray(occupations, float)
    if eps.shape != f.shape or eps.ndim != 1:
        raise ValueError(f"sanity_check: eigenvalues {eps.shape} and occupations {f.shape} differ")
    n_full = int(np.sum(f > 2.0 - 1e-3))
    n_partial = int(np.sum((f > 1e-3) & (f < 2.0 - 1e-3)))
    expected = n_valence / 2.0
    msgs = []
    if n_partial:
        msgs.append(f"{n_partial} partially occupied band(s)")
    if n_full != expected:
        msgs.append(f"{n_full} fully occupied bands, expected valence/2 = {expected:g}")
    if n_full >= len(eps):
        msgs.append("no empty band")
        gap = float("nan")
    elif n_full == 0:
        msgs.append("no occupied band")
        gap = float("nan")
    else:
        gap = float(eps[n_full] - eps[n_full - 1])
        if not gap >= min_gap:
            msgs.append(f"gap {gap:.3f} eV < {min_gap} eV")
    warnings = []
    if not msgs and gap < warn_gap:
        warnings.append(
            f"small gap {gap:.3f} eV < {warn_gap} eV (a localised state near the "
            "valence band top, or a near-metal): onset = 0 is less certain"
        )
    return {
        "passed": not msgs,
        "warnings": warnings,
        "n_fully_occupied": n_full,
        "expected_valence_over_2": expected,
        "n_partially_occupied": n_partial,
        "gap_eV": gap,
        "homo_eV": float(eps[n_full - 1]) if 0 < n_full <= len(eps) else float("nan"),
        "lumo_eV": float(eps[n_full]) if n_full < len(eps) else float("nan"),
        "message": "; ".join(msgs) if msgs else "ok",
    }


def parse_worker_output(out: dict[str, Any], n_bands_min: int = 1) -> dict[str, np.ndarray | float]:
    """Validate the xas-stage JSON; return sticks (absolute eV, xyz-summed intensity) and bands."""
    need = ("stick_energies_eV", "stick_intensity_xyz", "eigenvalues_eV", "occupations", "n_valence_electrons")
    missing = [k for k in need if k not in out]
    if missing:
        raise ValueError(f"GPAW worker output: missing field(s) {missing}")
    e = np.asarray(out["stick_energies_eV"], float)
    a = np.asarray(out["stick_intensity_xyz"], float)
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] != e.shape[0]:
        raise ValueError(f"GPAW worker output: stick_intensity_xyz has shape {a.shape}, expected (3, {e.shape[0]})")
    eps = np.asarray(out["eigenvalues_eV"], float)
    occ = np.asarray(out["occupations"], float)
    if eps.shape != occ.shape or eps.size < n_bands_min:
        raise ValueError(f"GPAW worker output: eigenvalues {eps.shape} vs occupations {occ.shape}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))):
        raise ValueError("GPAW worker output: non-finite stick energies or intensities")
    return {
        "stick_energies": e,
        "stick_intensity": a[:3].sum(0),
        "eigenvalues": eps,
        "occupations": occ,
        "n_valence": float(out["n_valence_electrons"]),
    }


def broaden_to_grid(energies: np.ndarray, intensity: np.ndarray, fwhm: float, source: str = "gpaw") -> np.ndarray:
    """Gaussian-broadened stick spectrum evaluated on :data:`s2s.spectrum.GRID` (eV),
    normalised to unit trapezoid area with :func:`s2s.spectrum.normalize`."""
    e = np.asarray(energies, float)
    w = np.asarray(intensity, float)
    if e.shape != w.shape or e.ndim != 1:
        raise ValueError(f"broaden_to_grid ({source}): energies {e.shape} and intensity {w.shape} differ")
    if not fwhm > 0:
        raise ValueError(f"broaden_to_grid ({source}): fwhm must be > 0 eV, got {fwhm}")
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    sel = (e > GRID[0] - 8 * sigma) & (e < GRID[-1] + 8 * sigma)
    y = (w[sel][None, :] * np.exp(-0.5 * ((GRID[:, None] - e[sel][None, :]) / sigma) ** 2)).sum(1)
    return normalize(y, source=source)


def build_record(
    structure_id: str,
    site_index: int,
    inp: dict[str, Any],
    scf_summary: dict[str, Any],
    xas_out: dict[str, Any],
    settings: GPAWSettings,
    wall: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The per-site JSON record (see docs/reference.md for every field)."""
    p = parse_worker_output(xas_out)
    check = sanity_check(p["eigenvalues"], p["occupations"], p["n_valence"], settings.min_gap, settings.warn_gap)
    lumo = check["lumo_eV"]
    sampled = any(int(n) > 1 for n in xas_out.get("xas_kpts", [1, 1, 1]))
    if sampled and np.isfinite(lumo):
        # with a k-mesh the lowest empty level is the lowest over the k-points: the first stick, which may lie
        # below the Gamma-point LUMO; above it by more than 0.1 eV means the band bookkeeping went wrong
        if p["stick_energies"][0] > lumo + 0.1 and check["passed"]:
            check["passed"] = False
            check["message"] = f"first stick {p['stick_energies'][0] - lumo:.3f} eV above the Gamma LUMO"
        lumo = min(lumo, float(p["stick_energies"][0]))
        check["lumo_eV"] = lumo
    rel = p["stick_energies"] - lumo
    if np.isfinite(lumo) and abs(rel[0]) > 1e-6 and check["passed"]:
        check["passed"] = False
        check["message"] = f"first stick at {rel[0]:.4f} eV from the LUMO (band bookkeeping)"
    grid_spec = (
        broaden_to_grid(rel, p["stick_intensity"], settings.fwhm, source=f"gpaw {structure_id} site {site_index}")
        if check["passed"]
        else None
    )
    n_sym = {s: inp["symbols"].count(s) for s in sorted(set(inp["symbols"]))}
    return {
        "record_version": RECORD_VERSION,
        "structure_id": structure_id,
        "site_index": int(site_index),
        "energies_eV": np.round(rel, 5).tolist(),
        "intensity": [float(f"{x:.6g}") for x in p["stick_intensity"]],
        "energy_reference": "lowest unoccupied Kohn-Sham level of the half-core-hole SCF (onset = 0)",
        "grid": {"start_eV": float(GRID[0]), "step_eV": round(float(GRID[1] - GRID[0]), 10), "n": int(GRID.size)},
        "grid_spectrum": None if grid_spec is None else [float(f"{x:.6g}") for x in grid_spec],
        "settings": {
            **settings.as_dict(),
            "nbands": inp["nbands"],  # as used ('auto' resolved)
            "converge_bands": inp["converge_bands"],
            "supercell_matrix": inp["supercell_matrix"],
            "cell_reduced": inp.get("cell_reduced", False),
            "supercell_atoms": len(inp["symbols"]),
            "gpts": inp.get("gpts"),
            "xas_kpts": xas_out.get("xas_kpts", [1, 1, 1]),
            "supercell_composition": n_sym,
            "min_image_A": inp["min_image_A"],
            "excited_index_in_supercell": inp["excited_index"],
            "broadening": f"Gaussian FWHM {settings.fwhm} eV (grid_spectrum only)",
            "calc_key": settings.calc_key(),
            "kpts": "Gamma only",
        },
        "sanity": check,
        "homo_eV_abs": check["homo_eV"],
        "lumo_eV_abs": lumo,
        "total_energy_eV": scf_summary.get("energy_eV"),
        "scf_iterations": scf_summary.get("scf_iterations"),
        "n_valence_electrons": p["n_valence"],
        "n_bands": int(p["eigenvalues"].size),
        "max_energy_eV": float(rel.max()),
        # highest empty band that the eigensolver converged (pw: the top |converge_bands| are not)
        "converged_max_energy_eV": _converged_max(rel, inp.get("converge_bands")),
        "wall_time_s": {k: round(float(v), 1) for k, v in wall.items()},
        **(extra or {}),
    }


def _converged_max(rel: np.ndarray, converge_bands: Any) -> float:
    if isinstance(converge_bands, (int, np.integer)) and not isinstance(converge_bands, bool):
        if converge_bands < 0:
            return float(rel[max(0, rel.size + int(converge_bands) - 1)])
    return float(rel.max())  # 'occupied' in lcao: the diagonalisation is exact for every band


def record_path(out_dir: Path | str, structure_id: str, site_index: int) -> Path:
    return Path(out_dir) / f"{structure_id}__site{site_index}.json"


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """JSON (indent 1) written atomically (:func:`s2s.files.atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, indent=1))


def load_record(path: Path | str) -> dict[str, Any]:
    """Read one reference record; raise ValueError naming the file if a field is missing."""
    with open(path) as fh:
        rec = json.load(fh)
    need = ("structure_id", "site_index", "energies_eV", "intensity", "grid_spectrum", "settings", "sanity")
    missing = [k for k in need if k not in rec]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}")
    if len(rec["energies_eV"]) != len(rec["intensity"]):
        raise ValueError(f"{path}: energies_eV and intensity differ in length")
    if rec["grid_spectrum"] is not None and len(rec["grid_spectrum"]) != GRID.size:
        raise ValueError(f"{path}: grid_spectrum has {len(rec['grid_spectrum'])} values, expected {GRID.size}")
    return rec


# --------------------------------------------------------------------------- running


def _venv_bins() -> set[str]:
    """The bin folders of the running virtual environment (none outside a venv)."""
    bins = set()
    if sys.prefix != sys.base_prefix:
        bins.add(str(Path(sys.prefix) / "bin"))
    if os.environ.get("VIRTUAL_ENV"):
        bins.add(str(Path(os.environ["VIRTUAL_ENV"]) / "bin"))
    return bins


def _worker_env() -> dict[str, str]:
    """The environment of the system-python worker: this venv's bin off PATH, single-threaded BLAS."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv_bins = _venv_bins()
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if p and p not in venv_bins)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
    )
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h
try:  # resolved once, here: a preexec_fn runs between fork and exec, where importing or loading is unsafe
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no prctl
    _PRCTL = None


def die_with_parent() -> None:
    """``preexec_fn`` of the GPAW worker: ask Linux (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) to stop it when the
    process that started it dies, so a build stopped by a signal (the session ended, ``kill``) leaves no GPAW
    run burning a core behind it.  A no-op where prctl is not available (not Linux)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _run(cmd: list[str], log: Path, cwd: Path) -> float:
    t0 = time.time()
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        r = subprocess.run(
            cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=_worker_env(), preexec_fn=die_with_parent
        )
    if r.returncode < 0:  # killed by a signal (the session ended, a user stopped it): not the site's fault
        raise WorkerInterrupted(f"GPAW worker stopped by signal {-r.returncode}: {' '.join(cmd)}")
    if r.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"GPAW worker failed (rc={r.returncode}): {' '.join(cmd)}\n{tail}")
    return time.time() - t0


def run_site(
    structure,
    structure_id: str,
    site_index: int,
    settings: GPAWSettings = GPAWSettings(),
    workdir: Path | str | None = None,
    setup_dir: Path | str | None = None,
    keep_files: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run GPAW on one O site (SCF under MPI, then XAS serially); return the record dict.

    A supercell GPAW refuses as too skewed (:data:`WEIRD_CELL`) is run again on its Niggli-reduced vectors
    (``settings.cell_reduced`` in the record).  Nothing is written to the reference folder here: see
    :func:`write_json_atomic`.
    """
    try:
        return _run_site(structure, structure_id, site_index, settings, workdir, setup_dir, keep_files, extra, False)
    except RuntimeError as err:
        if WEIRD_CELL not in str(err):
            raise
        # the same supercell on its Niggli-reduced vectors: same crystal, a cell GPAW's stencils accept
        return _run_site(structure, structure_id, site_index, settings, workdir, setup_dir, keep_files, extra, True)


#: GPAW's refusal of a skewed cell (fd_operators.GUCLaplace); :func:`run_site` then retries on the reduced cell
WEIRD_CELL = "You have a weird unit cell"


def _run_site(structure, structure_id, site_index, settings, workdir, setup_dir, keep_files, extra, reduce_cell):
    setup_dir = ensure_core_hole_setup(setup_dir, settings)
    wd = Path(tempfile.mkdtemp(prefix=f"gpaw_{structure_id}_{site_index}_", dir=workdir))
    try:
        inp = prepare_input(
            structure, site_index, settings, setup_dir, txt=str(wd / "gpaw.txt"), reduce_cell=reduce_cell
        )
        write_json_atomic(wd / "in.json", inp)
        nice = ["nice", "-n", str(settings.nice)] if settings.nice else []
        py = [SYSTEM_PYTHON, str(WORKER)]
        mpi = [MPIRUN, "-np", str(settings.mpi_procs)] if settings.mpi_procs > 1 else []
        log = wd / "worker.log"
        t0, cpu0 = time.time(), _children_cpu_s()
        if settings.mpi_procs > 1:
            t_scf = _run(nice + mpi + py + ["scf", "in.json", "calc.gpw", "scf.json"], log, wd)
            t_xas = _run(nice + py + ["xas", "in.json", "calc.gpw", "xas.json"], log, wd)
        else:
            t_both = _run(nice + py + ["both", "in.json", "scf.json", "xas.json"], log, wd)
        with open(wd / "scf.json") as fh:
            scf_summary = json.load(fh)
        with open(wd / "xas.json") as fh:
            xas_out = json.load(fh)
        if settings.mpi_procs == 1:
            t_scf = float(scf_summary.get("wall_s", t_both))
            t_xas = t_both - t_scf
        wall = {"scf": t_scf, "xas": t_xas, "total": time.time() - t0}
        extra = {**(extra or {}), "cpu_time_s": round(_children_cpu_s() - cpu0, 1)}
        rec = build_record(structure_id, site_index, inp, scf_summary, xas_out, settings, wall, extra)
        rec["gpaw_version"] = _gpaw_version()
        rec["host_cpus"] = os.cpu_count()
        return rec
    finally:
        if keep_files:
            print(f"run_site: kept {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)


def _children_cpu_s() -> float:
    """User + system CPU seconds of every finished child process (and their waited-for children)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _gpaw_version() -> str:
    r = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gpaw; print(gpaw.__version__)"], capture_output=True, text=True, env=_worker_env()
    )
    return r.stdout.strip() or "unknown"
