"""Local environments: the excited O at the origin and its neighbour shells.

An :class:`Environment` is the data type that flows through the pipeline:
a crystal structure becomes an environment, an environment a graph, a graph a
sample.  Coordinates are Cartesian, in Å, with the excited O at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: One-hot order of the species channel (paper: A in {0,1}^{N x 2}).
SPECIES: tuple[str, ...] = ("Si", "O")
SI, O = 0, 1  # noqa: E741 (the element symbol)


@dataclass(frozen=True)
class Environment:
    """A local environment of N atoms.

    Attributes
    ----------
    species : (N,) int array, index into :data:`SPECIES`; ``species[0]`` is the excited O.
    coords : (N, 3) float array, Å, excited O at the origin (``coords[0] == 0``).
    shell : (N,) int array, 0 for the excited atom, 1, 2, 3 for the neighbour shells.
    meta : free-form provenance (structure id, site index, ...).
    """

    species: np.ndarray
    coords: np.ndarray
    shell: np.ndarray
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        species = np.asarray(self.species, dtype=np.int64)
        coords = np.asarray(self.coords, dtype=np.float64)
        shell = np.asarray(self.shell, dtype=np.int64)
        n = species.shape[0]
        if species.ndim != 1 or coords.shape != (n, 3) or shell.shape != (n,):
            raise ValueError(
                f"Environment: expected species (N,), coords (N, 3), shell (N,); got "
                f"{species.shape}, {coords.shape}, {shell.shape}"
            )
        if n == 0:
            raise ValueError("Environment: empty (no atoms)")
        if not np.all((species >= 0) & (species < len(SPECIES))):
            raise ValueError(f"Environment: species indices must be in 0..{len(SPECIES) - 1}")
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "shell", shell)

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])

    def one_hot(self) -> np.ndarray:
        """(N, 2) one-hot species, order :data:`SPECIES`."""
        return np.eye(len(SPECIES))[self.species]

    def oxygen_fraction(self) -> float:
        """Fraction of O atoms (the quantity behind the paper's species accuracy)."""
        return float(np.mean(self.species == O))

    def symbols(self) -> list[str]:
        return [SPECIES[s] for s in self.species]


# ---------------------------------------------------------------------------
# Extraction from periodic structures (pymatgen)
# ---------------------------------------------------------------------------

#: Paper (Methods): neighbours are sites within 2.0 Å; targets go to the 3rd shell.
DEFAULT_CUTOFF: float = 2.0
DEFAULT_N_SHELLS: int = 3


class EnvironmentExtractionError(ValueError):
    """Base class for problems while extracting an environment (a ValueError)."""


class EmptyFirstShellError(EnvironmentExtractionError):
    """The excited O has no neighbour within the cutoff; the paper excludes such sites."""


class UnsupportedSpeciesError(EnvironmentExtractionError):
    """An atom of the environment is neither Si nor O (or the site is disordered)."""


def _label(structure, structure_id: str | None, site_index: int | None = None) -> str:
    """Human-readable name of a structure (and site) for error messages."""
    sid = structure_id or (structure.properties or {}).get("material_id") or structure.formula
    return f"structure {sid!s}" + ("" if site_index is None else f", site {site_index}")


def _species_index(structure, structure_id: str | None) -> np.ndarray:
    """(n_sites,) index into SPECIES per site; -1 for any other element."""
    if not structure.is_ordered:
        raise UnsupportedSpeciesError(
            f"{_label(structure, structure_id)}: has partially occupied (disordered) sites; "
            "order it first (e.g. OrderDisorderedStructureTransformation)"
        )
    lookup = {sym: i for i, sym in enumerate(SPECIES)}
    return np.array([lookup.get(site.specie.symbol, -1) for site in structure], dtype=np.int64)


def environment_from_structure(
    structure,
    site_index: int,
    cutoff: float = DEFAULT_CUTOFF,
    n_shells: int = DEFAULT_N_SHELLS,
    structure_id: str | None = None,
    *,
    _species: np.ndarray | None = None,
) -> Environment:
    """The local environment of O site ``site_index`` of a periodic pymatgen ``Structure``.

    Shells are graph hops with a distance ``cutoff`` (Å, inclusive): shell 1 = atoms
    within ``cutoff`` of the excited O, shell k+1 = atoms not yet in the environment
    within ``cutoff`` of any shell-k atom.  Every periodic image is a distinct atom
    (images of the excited O itself may appear in later shells); an image reached
    by several paths is counted once.  Atoms are ordered by shell, then by distance
    from the excited O (ties: species, site index, image), so the output is
    deterministic.  Coordinates are Cartesian in Å relative to the excited O.

    ``meta`` holds ``structure_id`` (if given or in ``structure.properties['material_id']``),
    ``site_index``, ``formula`` (reduced), ``cutoff``, ``n_shells`` and, per atom, the
    source ``site_indices`` and lattice ``images``.

    Raises
    ------
    EmptyFirstShellError   no atom within ``cutoff`` of the O (excluded in the paper).
    UnsupportedSpeciesError  the site is not O, or an environment atom is not Si/O.
    ValueError             bad arguments, or another atom sits on top of the O.
    """
    n_sites = len(structure)
    if not 0 <= site_index < n_sites:
        raise IndexError(f"{_label(structure, structure_id)}: site_index {site_index} out of range 0..{n_sites - 1}")
    if cutoff <= 0 or n_shells < 1:
        raise ValueError(f"cutoff must be > 0 Å and n_shells >= 1; got cutoff={cutoff}, n_shells={n_shells}")
    species = _species_index(structure, structure_id) if _species is None else _species
    label = _label(structure, structure_id, site_index)
    if species[site_index] != O:
        raise UnsupportedSpeciesError(f"{label}: the excited site must be O, got {structure[site_index].specie.symbol}")

    # Every atom of shell k lies within k * cutoff of the O (triangle inequality), so the
    # candidates are the periodic images inside a sphere of radius n_shells * cutoff.
    center = structure.cart_coords[site_index]
    lattice = structure.lattice
    fcoords, _dists, inds, images = lattice.get_points_in_sphere(
        structure.frac_coords, center, n_shells * cutoff + 1e-6, zip_results=False
    )
    inds = np.asarray(inds, dtype=np.int64)
    images = np.rint(np.asarray(images, dtype=float)).astype(np.int64).reshape(-1, 3)
    xyz = lattice.get_cartesian_coords(np.asarray(fcoords, dtype=float).reshape(-1, 3)) - center
    dist = np.linalg.norm(xyz, axis=1)

    is_origin = (inds == site_index) & np.all(images == 0, axis=1)
    if is_origin.sum() != 1:  # pragma: no cover - neighbour search always returns the centre
        raise RuntimeError(f"{label}: neighbour search did not return the excited site itself")
    overlap = (~is_origin) & (dist < 0.1)
    if overlap.any():
        j = int(inds[np.argmax(overlap)])
        raise ValueError(f"{label}: site {j} lies within 0.1 Å of the excited O (duplicate atoms?)")

    # Breadth-first search over the candidate graph (dense distance matrix; ~10-100 atoms).
    dmat = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)
    adj = dmat <= cutoff
    np.fill_diagonal(adj, False)
    level = np.full(len(inds), -1, dtype=np.int64)
    level[is_origin] = 0
    frontier = is_origin
    for k in range(1, n_shells + 1):
        new = adj[frontier].any(axis=0) & (level < 0)
        if not new.any():
            break
        level[new] = k
        frontier = new
    if not np.any(level == 1):
        raise EmptyFirstShellError(f"{label}: no atom within {cutoff} Å of the O (empty first shell)")

    keep = np.flatnonzero(level >= 0)
    sp = species[inds[keep]]
    if np.any(sp < 0):
        bad = keep[np.argmax(sp < 0)]
        raise UnsupportedSpeciesError(
            f"{label}: environment contains {structure[int(inds[bad])].specie.symbol} "
            f"(site {int(inds[bad])}, shell {int(level[bad])}); only {'/'.join(SPECIES)} are supported"
        )
    order = np.lexsort(
        (
            images[keep, 2],
            images[keep, 1],
            images[keep, 0],
            inds[keep],
            sp,
            np.round(dist[keep], 6),
            level[keep],
        )
    )
    keep = keep[order]
    coords = xyz[keep]
    coords[0] = 0.0  # exact origin (the first atom is the excited O: shell 0, distance 0)
    meta = {
        "site_index": int(site_index),
        "formula": structure.composition.reduced_formula,
        "cutoff": float(cutoff),
        "n_shells": int(n_shells),
        "site_indices": inds[keep].tolist(),
        "images": images[keep].tolist(),
    }
    sid = structure_id or (structure.properties or {}).get("material_id")
    if sid is not None:
        meta["structure_id"] = str(sid)
    return Environment(species=species[inds[keep]], coords=coords, shell=level[keep], meta=meta)


def unique_o_site_groups(structure, symprec: float = 0.01, structure_id: str | None = None) -> list[tuple[int, int]]:
    """Symmetrically unique O sites as ``(representative site index, multiplicity)``.

    Groups sites by spglib's crystallographic orbits from pymatgen's
    ``SpacegroupAnalyzer(structure, symprec).get_symmetry_dataset()`` (``symprec`` in Å).
    Unlike ``get_symmetrized_structure().equivalent_indices`` these also merge sites
    related by the translations of a supercell.  Indices refer to ``structure``; the
    representative is the lowest index of its orbit; the multiplicity counts the O
    sites of the orbit in this cell.  If spglib cannot analyse the cell, every O site is
    treated as unique (P1) with a warning.
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    species = _species_index(structure, structure_id)
    try:
        orbits = np.asarray(
            SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset().crystallographic_orbits
        )
    except Exception as exc:  # spglib failure on odd cells: fall back to P1
        import warnings

        warnings.warn(
            f"{_label(structure, structure_id)}: symmetry analysis failed ({exc}); treating all O sites as unique"
        )
        orbits = np.arange(len(structure))
    o_sites = np.flatnonzero(species == O)
    labels, first, counts = np.unique(orbits[o_sites], return_index=True, return_counts=True)
    return sorted((int(o_sites[f]), int(c)) for f, c in zip(first, counts))


def unique_o_sites(structure, symprec: float = 0.01, structure_id: str | None = None) -> list[int]:
    """Indices of the symmetrically unique O sites (see :func:`unique_o_site_groups`)."""
    return [i for i, _ in unique_o_site_groups(structure, symprec, structure_id)]


@dataclass
class StructureEnvironments:
    """Environments of the unique O sites of one structure, plus the sites skipped (and why)."""

    environments: list[Environment]
    skipped: list[tuple[int, str]]


def environments_from_structure(
    structure,
    cutoff: float = DEFAULT_CUTOFF,
    n_shells: int = DEFAULT_N_SHELLS,
    symprec: float = 0.01,
    structure_id: str | None = None,
    sites: list[int] | None = None,
) -> StructureEnvironments:
    """Environments of all symmetrically unique O sites (or of ``sites`` if given).

    Sites with an empty first shell are skipped and recorded in ``skipped`` (as the paper
    excludes them); other errors propagate.  Each environment's ``meta`` gets the site's
    ``multiplicity`` (number of symmetry-equivalent O sites; 1 when ``sites`` is given).
    """
    species = _species_index(structure, structure_id)
    if sites is None:
        groups = unique_o_site_groups(structure, symprec, structure_id)
    else:
        groups = [(int(i), 1) for i in sites]
    envs: list[Environment] = []
    skipped: list[tuple[int, str]] = []
    for i, mult in groups:
        try:
            env = environment_from_structure(structure, i, cutoff, n_shells, structure_id, _species=species)
        except EmptyFirstShellError as exc:
            skipped.append((i, str(exc)))
            continue
        env.meta["multiplicity"] = mult
        envs.append(env)
    return StructureEnvironments(envs, skipped)


# ---------------------------------------------------------------------------
# JSON-able (de)serialisation
# ---------------------------------------------------------------------------


def environment_to_dict(env: Environment) -> dict:
    """A JSON-able dict: species as symbols, coords (Å) and shell as nested lists, meta as is."""
    return {
        "species": env.symbols(),
        "coords": env.coords.tolist(),
        "shell": env.shell.tolist(),
        "meta": dict(env.meta),
    }


def environment_from_dict(d: dict) -> Environment:
    """Inverse of :func:`environment_to_dict` (species may be symbols or indices)."""
    missing = {"species", "coords", "shell"} - set(d)
    if missing:
        raise ValueError(f"environment dict: missing field(s) {sorted(missing)}")
    species = d["species"]
    if len(species) and isinstance(species[0], str):
        unknown = sorted(set(species) - set(SPECIES))
        if unknown:
            raise ValueError(f"environment dict: field 'species' has unknown element(s) {unknown}; expected {SPECIES}")
        species = [SPECIES.index(s) for s in species]
    return Environment(species=species, coords=d["coords"], shell=d["shell"], meta=dict(d.get("meta", {})))


def first_shell_label(env: Environment) -> str:
    """Species of the first shell as a label, e.g. ``"Si2"`` (bridging O), ``"Si3"``, ``"Si1O1"``.

    A coarse class of the excited O's coordination, used to group spectra.
    """
    first = env.species[env.shell == 1]
    n_si, n_o = int(np.sum(first == SI)), int(np.sum(first == O))
    parts = [f"Si{n_si}" if n_si else "", f"O{n_o}" if n_o else ""]
    return "".join(parts) or "none"
