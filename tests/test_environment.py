"""Local-environment extraction: shells by graph hops, periodic images, errors."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from s2s.environment import (
    SI,
    EmptyFirstShellError,
    Environment,
    O,
    UnsupportedSpeciesError,
    environment_from_dict,
    environment_from_structure,
    environment_to_dict,
    environments_from_structure,
    unique_o_site_groups,
    unique_o_sites,
)


# --------------------------------------------------------------------------- reference
def brute_force_shells(structure: Structure, site: int, cutoff: float, n_shells: int):
    """Independent reference: explicit image enumeration + BFS on a dense distance matrix.

    Returns a sorted list of (shell, species symbol, rounded x, y, z) tuples.
    """
    lat = structure.lattice.matrix
    # number of images needed along each lattice vector to cover a sphere of radius R
    R = n_shells * cutoff + 1e-6
    inv = np.linalg.inv(lat)
    widths = 1.0 / np.linalg.norm(inv, axis=0)  # interplanar spacings
    nmax = np.ceil(R / widths).astype(int) + 1
    origin = structure.cart_coords[site]
    pts, syms = [], []
    for img in itertools.product(*[range(-n, n + 1) for n in nmax]):
        shift = np.asarray(img) @ lat
        for s in structure:
            x = s.coords + shift - origin
            if np.linalg.norm(x) <= R:
                pts.append(x)
                syms.append(s.specie.symbol)
    pts = np.asarray(pts)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    level = np.full(len(pts), -1)
    start = int(np.argmin(np.linalg.norm(pts, axis=1)))
    level[start] = 0
    for k in range(1, n_shells + 1):
        front = np.flatnonzero(level == k - 1)
        new = (d[front] <= cutoff).any(axis=0) & (level < 0)
        level[new] = k
    return sorted((int(level[i]), syms[i], *np.round(pts[i], 4).tolist()) for i in np.flatnonzero(level >= 0))


def as_rows(env: Environment):
    return sorted((int(s), sym, *np.round(x, 4).tolist()) for s, sym, x in zip(env.shell, env.symbols(), env.coords))


def assert_same_as_reference(env: Environment, ref) -> None:
    """Same atoms (shell, species, coordinates within 1e-6 Å) as the brute-force reference."""
    from scipy.optimize import linear_sum_assignment

    got = as_rows(env)
    assert len(got) == len(ref)
    assert sorted(r[:2] for r in got) == sorted(r[:2] for r in ref)  # shell/species counts
    for key in {r[:2] for r in ref}:
        a = env.coords[[(int(s), sym) == key for s, sym in zip(env.shell, env.symbols())]]
        b = np.array([r[2:] for r in ref if r[:2] == key])
        cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
        i, j = linear_sum_assignment(cost)
        assert cost[i, j].max() < 1e-3, (key, cost[i, j].max())


def shell_counts(env: Environment) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for s, sym in zip(env.shell, env.symbols()):
        out[(int(s), sym)] = out.get((int(s), sym), 0) + 1
    return out


# --------------------------------------------------------------------------- alpha-quartz
def test_fixture_matches_aflow_prototype(alpha_quartz):
    """The fixture is the same crystal as pymatgen's bundled AFLOW prototype of alpha-quartz.

    The data file is read directly: importing pymatgen.analysis.prototypes deserialises
    the whole library (seconds)."""
    import gzip
    import importlib.util
    from pathlib import Path

    from pymatgen.analysis.structure_matcher import StructureMatcher

    spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
    with gzip.open(Path(spec.origin).parent / "aflow_prototypes.json.gz", "rt") as fh:
        library = json.load(fh)
    proto = next(e for e in library if e["tags"]["aflow"] == "A2B_hP9_152_c_a")
    assert proto["tags"]["mineral"] == "quartz (alpha)"
    assert StructureMatcher().fit(alpha_quartz, Structure.from_dict(proto["snl"]))


def test_alpha_quartz_counts_and_distances(alpha_quartz):
    sites = unique_o_sites(alpha_quartz)
    assert len(sites) == 1
    env = environment_from_structure(alpha_quartz, sites[0], structure_id="alpha-quartz")
    assert env.n_atoms == 15
    assert env.species[0] == O and env.shell[0] == 0 and np.all(env.coords[0] == 0)
    assert shell_counts(env) == {(0, "O"): 1, (1, "Si"): 2, (2, "O"): 6, (3, "Si"): 6}
    r1 = np.linalg.norm(env.coords[env.shell == 1], axis=1)
    assert np.all((r1 >= 1.60) & (r1 <= 1.62)), r1
    # every Si-O bond in the environment (<= 2 Å) is 1.60-1.62 Å
    d = np.linalg.norm(env.coords[:, None] - env.coords[None], axis=-1)
    si_o = d[np.ix_(env.species == SI, env.species == O)]
    bonds = si_o[si_o <= 2.0]
    assert len(bonds) == 2 + 6 + 6  # O-Si(1) + Si(1)-O(2) + O(2)-Si(3)
    assert np.all((bonds >= 1.60) & (bonds <= 1.62)), bonds
    assert env.meta["structure_id"] == "alpha-quartz"
    assert env.meta["site_index"] == sites[0] and env.meta["formula"] == "SiO2"
    assert_same_as_reference(env, brute_force_shells(alpha_quartz, sites[0], 2.0, 3))


def test_alpha_quartz_unique_sites_and_multiplicity(alpha_quartz):
    assert unique_o_site_groups(alpha_quartz) == [(3, 6)]
    res = environments_from_structure(alpha_quartz, structure_id="q")
    assert len(res.environments) == 1 and res.skipped == []
    assert res.environments[0].meta["multiplicity"] == 6
    # all six O sites are equivalent: same sorted distances from the origin
    ref = np.sort(np.linalg.norm(res.environments[0].coords, axis=1))
    for i in range(3, 9):
        e = environment_from_structure(alpha_quartz, i)
        assert np.allclose(np.sort(np.linalg.norm(e.coords, axis=1)), ref, atol=1e-6)
    # supercells keep one unique O site (2x1x1 breaks the hexagonal cell shape but the
    # crystal is the same: sites related by supercell translations are merged)
    assert [m for _, m in unique_o_site_groups(alpha_quartz * (2, 1, 1))] == [12]
    assert [m for _, m in unique_o_site_groups(alpha_quartz * (1, 1, 2))] == [12]
    # breaking the symmetry makes sites unique; multiplicities still sum to the O count
    broken = alpha_quartz.copy()
    broken.translate_sites([3], [0.05, 0.0, 0.0], frac_coords=False)
    groups = unique_o_site_groups(broken)
    assert len(groups) > 1 and sum(m for _, m in groups) == 6


def test_ordering_is_by_shell_then_distance_and_deterministic(alpha_quartz):
    e1 = environment_from_structure(alpha_quartz, 4)
    e2 = environment_from_structure(alpha_quartz, 4)
    assert np.array_equal(e1.coords, e2.coords) and np.array_equal(e1.species, e2.species)
    assert np.all(np.diff(e1.shell) >= 0)
    r = np.linalg.norm(e1.coords, axis=1)
    for k in (1, 2, 3):
        assert np.all(np.diff(r[e1.shell == k]) >= -1e-9)
    assert len(e1.meta["site_indices"]) == len(e1.meta["images"]) == e1.n_atoms
    # sites stored outside the unit cell (unwrapped fractional coordinates) give the same result
    moved = alpha_quartz.copy()
    moved.translate_sites([4, 0], [1.0, -2.0, 1.0], frac_coords=True, to_unit_cell=False)
    e3 = environment_from_structure(moved, 4)
    assert np.allclose(e3.coords, e1.coords, atol=1e-9) and np.array_equal(e3.species, e1.species)


def test_extraction_is_fast(alpha_quartz):
    environment_from_structure(alpha_quartz, 3)  # warm-up
    n = 20
    t0 = time.perf_counter()
    for _ in range(n):
        environment_from_structure(alpha_quartz, 3)
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 0.05, f"{per_call * 1e3:.1f} ms per environment"


# --------------------------------------------------------------------------- periodic images
def test_chain_wraps_around_a_two_atom_cell():
    """Si-O chain along x in a 2-atom cell: shells 2 and 3 are periodic images,
    including images of the excited O itself."""
    a = 3.2
    s = Structure(Lattice.orthorhombic(a, 10.0, 10.0), ["Si", "O"], [[0, 0, 0], [1.6, 0, 0]], coords_are_cartesian=True)
    env = environment_from_structure(s, 1)
    assert env.n_atoms == 7
    assert env.shell.tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert env.symbols() == ["O", "Si", "Si", "O", "O", "Si", "Si"]
    assert sorted(env.coords[:, 0].round(6).tolist()) == [-4.8, -3.2, -1.6, 0.0, 1.6, 3.2, 4.8]
    assert np.allclose(env.coords[:, 1:], 0)
    # shell-2 O atoms are images of the excited site
    assert [env.meta["site_indices"][i] for i in np.flatnonzero(env.shell == 2)] == [1, 1]
    assert_same_as_reference(env, brute_force_shells(s, 1, 2.0, 3))


def test_atom_reached_twice_counts_once():
    """Square Si-O net (4-rings): at the 4th hop the O images at (1.6, +-3.2) are reachable
    from two 3rd-shell Si each; they must appear once (16 shell-4 O, counted by hand)."""
    a = 3.2
    s = Structure(
        Lattice.orthorhombic(a, a, 10.0),
        ["Si", "O", "O"],
        [[0, 0, 0], [1.6, 0, 0], [0, 1.6, 0]],
        coords_are_cartesian=True,
    )
    env = environment_from_structure(s, 1, n_shells=4)
    assert shell_counts(env) == {(0, "O"): 1, (1, "Si"): 2, (2, "O"): 6, (3, "Si"): 6, (4, "O"): 16}
    d = np.linalg.norm(env.coords[:, None] - env.coords[None], axis=-1)
    assert d[np.triu_indices(env.n_atoms, 1)].min() > 1.0  # no duplicates
    for target in ([0.0, 3.2, 0.0], [0.0, -3.2, 0.0]):  # absolute (1.6, +-3.2)
        k = int(np.argmin(np.linalg.norm(env.coords - target, axis=1)))
        assert np.allclose(env.coords[k], target) and env.shell[k] == 4
        parents = (env.shell == 3) & (d[k] <= 2.0)
        assert parents.sum() == 2
    assert_same_as_reference(env, brute_force_shells(s, 1, 2.0, 4))


# --------------------------------------------------------------------------- Si-Si bonds
def _diamond_si_with_bond_centre_o() -> Structure:
    s = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
    si0 = s.cart_coords[0]
    nb = min(s.get_neighbors(s[0], 2.5), key=lambda n: n.nn_distance)
    s.append("O", (si0 + nb.coords) / 2, coords_are_cartesian=True)
    return s


def test_si_si_bonds_follow_the_cutoff():
    s = _diamond_si_with_bond_centre_o()
    o = len(s) - 1
    # Si-Si = 2.35 Å > 2.0 Å: with the paper's cutoff only the two bridging Si are neighbours
    env = environment_from_structure(s, o)
    assert shell_counts(env) == {(0, "O"): 1, (1, "Si"): 2}
    assert np.allclose(np.linalg.norm(env.coords[1:], axis=1), 5.431 * np.sqrt(3) / 8, atol=1e-6)
    # with a 2.4 Å cutoff the Si-Si bonds are edges: 3 new Si per bridging Si
    env = environment_from_structure(s, o, cutoff=2.4)
    counts = shell_counts(env)
    assert counts[(1, "Si")] == 2 and counts[(2, "Si")] == 6
    d = np.linalg.norm(env.coords[:, None] - env.coords[None], axis=-1)
    si = env.species == SI
    assert np.any(np.isclose(d[np.ix_(si, si)], 2.3517, atol=1e-3))
    assert_same_as_reference(env, brute_force_shells(s, o, 2.4, 3))


def test_made_up_sio_cell_with_si_si_bonds_matches_reference():
    """A dense made-up Si4O4 triclinic cell (random positions, min. separation 1.45 Å,
    fixed seed) with Si-Si contacts < 2 Å, checked against the brute force."""
    rng = np.random.default_rng(0)
    lat = Lattice.from_parameters(4.0, 4.3, 4.6, 82, 97, 104)
    pts: list[np.ndarray] = []
    while len(pts) < 8:
        f = rng.uniform(0, 1, 3)
        if all(lat.get_distance_and_image(f, p)[0] > 1.45 for p in pts):
            pts.append(f)
    s = Structure(lat, ["Si"] * 4 + ["O"] * 4, pts)
    dm = s.distance_matrix
    assert dm[:4, :4][np.triu_indices(4, 1)].min() < 2.0  # Si-Si edges exist in this cell
    n_si_si_edges = 0
    for o in range(4, 8):
        env = environment_from_structure(s, o)
        assert_same_as_reference(env, brute_force_shells(s, o, 2.0, 3))
        d = np.linalg.norm(env.coords[:, None] - env.coords[None], axis=-1)
        si = env.species == SI
        n_si_si_edges += int(np.sum((d[np.ix_(si, si)] > 0) & (d[np.ix_(si, si)] <= 2.0)))
    assert n_si_si_edges > 0


# --------------------------------------------------------------------------- rejection & errors
def test_empty_first_shell_is_rejected_and_recorded():
    s = Structure(Lattice.cubic(6.0), ["O", "Si", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5 + 1.6 / 6]])
    with pytest.raises(EmptyFirstShellError, match="site 0"):
        environment_from_structure(s, 0, structure_id="isolated-O")
    res = environments_from_structure(s, structure_id="isolated-O")
    assert [e.meta["site_index"] for e in res.environments] == [2]
    assert [i for i, _ in res.skipped] == [0] and "empty first shell" in res.skipped[0][1]


def test_unsupported_species_and_bad_site(alpha_quartz):
    ge = alpha_quartz.copy()
    ge.replace_species({"Si": "Ge"})
    with pytest.raises(UnsupportedSpeciesError, match=r"structure mp-X, site 3.*Ge"):
        environment_from_structure(ge, 3, structure_id="mp-X")
    with pytest.raises(UnsupportedSpeciesError, match="must be O"):
        environment_from_structure(alpha_quartz, 0)
    with pytest.raises(IndexError):
        environment_from_structure(alpha_quartz, 99)
    assert isinstance(UnsupportedSpeciesError("x"), ValueError)


# --------------------------------------------------------------------------- serialisation
def test_dict_round_trip_is_json_able(alpha_quartz):
    env = environments_from_structure(alpha_quartz, structure_id="q").environments[0]
    d = json.loads(json.dumps(environment_to_dict(env)))
    back = environment_from_dict(d)
    assert np.array_equal(back.species, env.species) and np.array_equal(back.shell, env.shell)
    assert np.allclose(back.coords, env.coords) and back.meta == env.meta
    with pytest.raises(ValueError, match="unknown element"):
        environment_from_dict({**d, "species": ["Ge"] * env.n_atoms})


def test_first_shell_label(alpha_quartz):
    from s2s.environment import Environment, first_shell_label

    env = environment_from_structure(alpha_quartz, unique_o_sites(alpha_quartz)[0])
    assert first_shell_label(env) == "Si2"
    peroxide = Environment([1, 0, 1], [[0, 0, 0], [1.6, 0, 0], [-1.5, 0, 0]], [0, 1, 1])
    assert first_shell_label(peroxide) == "Si1O1"
