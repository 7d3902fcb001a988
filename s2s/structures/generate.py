"""Generated SiOx crystals: seed cells relaxed with CHGNet, filtered and deduplicated.

Four seed strategies (each attempt k uses its own seed ``base_seed + k``):

* ``random``   - a random symmetric cell from pyxtal (6-24 atoms, random space group),
  x = O/Si drawn from 0.5-4 (mostly 2);
* ``rattled``  - a small SiO2 framework of the fixed sources, randomly strained (±6 %) and
  rattled (0.15 Å), so that relaxation bends the straight Si-O-Si bridges;
* ``oxidised`` - a 4-connected Si net with O inserted into a random fraction f of its Si-Si
  bonds (x = 2f, 0.5-1.75): suboxides with real Si-Si bonds;
* ``peroxide`` - an SiO2 framework with a random fraction f of its bridges made Si-O-O-Si
  (x = 2 + 2f, up to 4): deliberate peroxide bridges (the only place O-O bonds are allowed).

Every relaxed cell is checked with :func:`s2s.structures.filters.check_structure`, then
against the energy hull of what we have and for duplicates.  Relaxation: CHGNet (its weights
ship in the wheel; ``torch.set_num_threads(1)``), FIRE with the cell (FrechetCellFilter).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.files import atomic_write_text
from s2s.structures.records import Relaxation, StructureRecord, load_records

STRATEGIES = ("random", "rattled", "oxidised", "peroxide", "random_sio2")
#: Default mix (attempts 0-230 of the shipped set used it); ``random_sio2`` is off by default so
#: that the attempt -> seed map of earlier runs is unchanged.  ``parse_weights`` reads other mixes.
STRATEGY_WEIGHTS = (0.25, 0.20, 0.40, 0.15, 0.0)
#: Bumped whenever seed construction changes (the seed -> cell map depends on it); logged.
GENERATOR_VERSION = 2


@dataclass
class Seed:
    """A seed cell to relax, with how it was made."""

    structure: Structure
    strategy: str
    info: dict
    allow_peroxide: bool = False


# ---------------------------------------------------------------------------------------
# seed cells
# ---------------------------------------------------------------------------------------
def random_pyxtal_cell(rng: np.random.Generator, max_tries: int = 30, sio2_only: bool = False) -> Seed:
    """A random symmetric SiOx cell from pyxtal (6-18 atoms); SiO2 only if ``sio2_only``."""
    from pyxtal import pyxtal

    r = 0.0 if sio2_only else rng.random()
    if r < 0.6:
        x = 2.0
    elif r < 0.85:
        x = float(rng.choice([0.5, 1.0, 1.5]))
    else:
        x = float(rng.choice([2.5, 3.0, 4.0]))
    options = [(n, round(n * x)) for n in range(2, 13) if abs(n * x - round(n * x)) < 1e-9]
    options = [(n, m) for n, m in options if 6 <= n + m <= 18]
    n_si, n_o = options[rng.integers(len(options))]
    last = None
    for _ in range(max_tries):
        sg = int(rng.integers(2, 231))
        xtal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xtal.from_random(
                    3, sg, ["Si", "O"], [n_si, n_o], factor=1.3, t_factor=1.2, random_state=int(rng.integers(2**31))
                )
        except Exception as err:  # noqa: BLE001 - incompatible group / composition: try another
            last = err
            continue
        if not xtal.valid:
            continue
        s = xtal.to_pymatgen()
        if _min_distance(s) < 1.4:
            continue
        return Seed(
            s, "random_sio2" if sio2_only else "random", {"x": x, "n_si": n_si, "n_o": n_o, "spacegroup_seed": sg}
        )
    raise RuntimeError(f"pyxtal: no valid cell for Si{n_si}O{n_o} in {max_tries} tries ({last})")


def rattled_framework(rng: np.random.Generator, frameworks: list[StructureRecord]) -> Seed:
    """A small SiO2 framework (doubled along a random axis if small), strained and rattled."""
    rec = frameworks[rng.integers(len(frameworks))]
    s = rec.structure.copy()
    mult = [1, 1, 1]
    if len(s) <= 12:
        mult[int(rng.integers(3))] = 2
        s = s * mult
    strain = rng.uniform(-0.10, 0.10, size=(3, 3))
    strain = 0.5 * (strain + strain.T)
    s = Structure(Lattice(s.lattice.matrix @ (np.eye(3) + strain)), s.species, s.frac_coords)
    s.perturb(0.25, min_distance=0.05)
    return Seed(s, "rattled", {"parent": rec.id, "supercell": mult})


SI_O, O_O = 1.62, 1.48  # Å, seed bond lengths


def _unit_perpendicular(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    v -= v @ axis * axis
    return v / np.linalg.norm(v)


def _bridge_o(si1: np.ndarray, si2: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An O between two Si (Cartesian Å): on the perpendicular bisector, Si-O = SI_O if possible."""
    d = np.linalg.norm(si2 - si1)
    axis = (si2 - si1) / d
    h = np.sqrt(max(SI_O**2 - (d / 2) ** 2, 0.0))
    return 0.5 * (si1 + si2) + h * _unit_perpendicular(axis, rng)


def _peroxide_pair(si1: np.ndarray, si2: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two O bridging Si1 and Si2 as a cis Si-O-O-Si: Si-O = SI_O, O-O = O_O (for d < 4.7 Å)."""
    d = np.linalg.norm(si2 - si1)
    axis = (si2 - si1) / d
    t = min(max((d - O_O) / 2, 0.0), SI_O)
    p = np.sqrt(max(SI_O**2 - t**2, 0.0))
    perp = _unit_perpendicular(axis, rng)
    return si1 + t * axis + p * perp, si2 - t * axis + p * perp


def _min_distance(s: Structure) -> float:
    return float(s.get_neighbor_list(3.0)[3].min()) if len(s) > 1 else np.inf


def oxidised_net(rng: np.random.Generator, nets: list[Structure], min_dist: float = 1.4) -> Seed:
    """An Si net with O inserted into a random fraction f of its Si-Si bonds (x = 2f).

    The cell is swollen a little (the relaxation does the rest); each inserted O sits on the
    perpendicular bisector of its Si-Si bond at Si-O = 1.62 Å, in a random direction.
    """
    from s2s.structures.frameworks import net_edges

    x = float(rng.choice([0.5, 0.75, 1.0, 1.25, 1.5, 1.75]))
    for _ in range(50):
        net = nets[rng.integers(len(nets))].copy()
        for mult in ([1, 1, 1], [2, 1, 1], [1, 2, 1], [1, 1, 2], [2, 2, 1]):
            s = net * mult
            n_si = len(s)
            n_o = x * n_si
            if abs(n_o - round(n_o)) < 1e-9 and 4 <= n_si <= 12 and n_si + n_o <= 24:
                break
        else:
            continue
        n_o = int(round(n_o))
        s = _with_bond_length(s, 2.35 * (1.0 + 0.15 * x))
        edges = net_edges(s)
        if edges is None:
            continue
        ci, ni, img = edges
        chosen = rng.choice(len(ci), size=n_o, replace=False)
        frac = s.frac_coords
        o_cart = [_bridge_o(*s.lattice.get_cartesian_coords([frac[ci[e]], frac[ni[e]] + img[e]]), rng) for e in chosen]
        out = Structure(
            s.lattice,
            ["Si"] * n_si + ["O"] * n_o,
            np.vstack([s.cart_coords, np.array(o_cart)]),
            coords_are_cartesian=True,
        )
        if _min_distance(out) >= min_dist:
            return Seed(out, "oxidised", {"x": x, "n_si": n_si, "n_o": n_o})
    raise RuntimeError(f"oxidised_net: no seed for x = {x} within 24 atoms and min distance {min_dist} Å")


def peroxide_framework(rng: np.random.Generator, frameworks: list[StructureRecord], min_dist: float = 1.4) -> Seed:
    """An SiO2 framework with a fraction f of its Si-O-Si bridges made Si-O-O-Si (x = 2 + 2f)."""
    from s2s.structures.filters import SI_O_CUT, bond_analysis

    for _ in range(60):
        rec = frameworks[rng.integers(len(frameworks))]
        if rec.n_atoms > 18:
            continue
        s = rec.structure.copy()
        s.scale_lattice(s.volume * 1.08**3)
        sym = np.array([sp.symbol for sp in s.species])
        o_idx = np.where(sym == "O")[0]
        n_si = int((sym == "Si").sum())
        x = float(rng.choice([2.5, 3.0, 3.5, 4.0]))
        n_perox = int(np.clip(round((x - 2) / 2 * len(o_idx)), 1, len(o_idx)))
        chosen = set(rng.choice(o_idx, size=n_perox, replace=False).tolist())
        species, coords = [], []
        ok = True
        for i, site in enumerate(s):
            if i not in chosen:
                species.append(site.specie.symbol)
                coords.append(site.coords)
                continue
            nbs = sorted(
                (n for n in s.get_neighbors(site, SI_O_CUT * 1.1) if n.specie.symbol == "Si"),
                key=lambda n: n.nn_distance,
            )
            if len(nbs) != 2:
                ok = False
                break
            species += ["O", "O"]
            coords += list(_peroxide_pair(nbs[0].coords, nbs[1].coords, rng))
        if not ok:
            continue
        out = Structure(s.lattice, species, coords, coords_are_cartesian=True)
        if _min_distance(out) < min_dist or bond_analysis(out).o_cn_o.max() > 1:
            continue  # a peroxide O too close to another atom than its partner
        x_real = (len(species) - n_si) / n_si
        return Seed(out, "peroxide", {"parent": rec.id, "x": x_real, "n_peroxide": n_perox}, allow_peroxide=True)
    raise RuntimeError("peroxide_framework: no seed with acceptable distances")


def _with_bond_length(net: Structure, bond: float) -> Structure:
    ci, ni, img, d = net.get_neighbor_list(6.0)
    s = net.copy()
    s.scale_lattice(s.volume * (bond / d.min()) ** 3)
    return s


def parse_weights(text: str | None) -> tuple[float, ...]:
    """Strategy weights from ``"random_sio2=0.5,rattled=0.2,..."`` (unnamed strategies get 0).

    ``None`` or ``""`` gives the default mix ``STRATEGY_WEIGHTS``.  Weights are normalised.
    """
    if not text:
        return STRATEGY_WEIGHTS
    w = dict.fromkeys(STRATEGIES, 0.0)
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in w:
            raise ValueError(f"--weights: expected NAME=VALUE with NAME in {STRATEGIES}, got {part!r}")
        try:
            w[name] = float(value)
        except ValueError:
            raise ValueError(f"--weights: {name}: expected a number, got {value!r}") from None
        if w[name] < 0:
            raise ValueError(f"--weights: {name}: weight must be >= 0, got {value!r}")
    total = sum(w.values())
    if total <= 0:
        raise ValueError("--weights: at least one weight must be positive")
    return tuple(w[n] / total for n in STRATEGIES)


def make_seed(
    k: int,
    base_seed: int,
    frameworks: list[StructureRecord],
    nets: list[Structure],
    weights: tuple[float, ...] = STRATEGY_WEIGHTS,
) -> Seed:
    """The seed cell of attempt k (deterministic in base_seed + k and the strategy weights)."""
    rng = np.random.default_rng(base_seed + k)
    strategy = STRATEGIES[rng.choice(len(STRATEGIES), p=np.asarray(weights) / np.sum(weights))]
    if strategy == "random":
        return random_pyxtal_cell(rng)
    if strategy == "random_sio2":
        return random_pyxtal_cell(rng, sio2_only=True)
    if strategy == "rattled":
        return rattled_framework(rng, frameworks)
    if strategy == "oxidised":
        return oxidised_net(rng, nets)
    return peroxide_framework(rng, frameworks)


# ---------------------------------------------------------------------------------------
# relaxation
# ---------------------------------------------------------------------------------------
class Relaxer:
    """CHGNet relaxation (cell + positions, FIRE) on one CPU thread."""

    def __init__(self, fmax: float = 0.05, steps: int = 800, threads: int = 1):
        import torch
        from chgnet.model import CHGNet, StructOptimizer

        torch.set_num_threads(threads)
        import chgnet

        self.version = f"chgnet {chgnet.__version__}"
        self.fmax, self.steps = fmax, steps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt = StructOptimizer(model=CHGNet.load(verbose=False), optimizer_class="FIRE")

    def relax(self, structure: Structure) -> tuple[Structure, Relaxation]:
        t0 = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self.opt.relax(
                structure,
                fmax=self.fmax,
                steps=self.steps,
                relax_cell=True,
                ase_filter="FrechetCellFilter",
                verbose=False,
            )
        traj = res["trajectory"]
        final: Structure = res["final_structure"]
        n_steps = len(traj.energies)
        forces = np.asarray(traj.forces[-1])
        fmax_end = float(np.linalg.norm(forces, axis=1).max())
        e = float(traj.energies[-1]) / len(final)
        return final, Relaxation(
            method="CHGNet",
            version=self.version,
            fmax=self.fmax,
            steps=n_steps,
            converged=bool(n_steps < self.steps and fmax_end <= self.fmax * 1.5),
            energy_per_atom=e,
            seconds=round(time.time() - t0, 2),
            extra={"optimizer": "FIRE", "cell_filter": "FrechetCellFilter", "fmax_end": round(fmax_end, 4)},
        )


# ---------------------------------------------------------------------------------------
# the resumable loop
# ---------------------------------------------------------------------------------------
def _read_attempts(log: Path) -> dict[int, dict]:
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                done[int(d["k"])] = d
    return done


def _append(log: Path, entry: dict) -> None:
    with open(log, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def run_generation(
    folder: Path,
    n_attempts: int = 500,
    seed: int = 20240601,
    fmax: float = 0.05,
    steps: int = 800,
    hull_window: float = 0.2,
    max_framework_atoms: int = 36,
    weights: tuple[float, ...] = STRATEGY_WEIGHTS,
    shard: tuple[int, int] = (0, 1),
) -> None:
    """Run attempts 0..n_attempts-1 that are not in the log yet (resumable; shows progress).

    Accepted crystals are written to ``folder/gen-<k>.json``; every attempt is logged to
    ``folder/generated/attempts.jsonl``; crystals more than hull_window eV/atom above the
    lowest energy of their composition are moved to ``folder/generated/above_hull/``.
    ``weights`` sets the strategy mix (logged with every attempt when not the default);
    ``shard=(i, n)`` runs only attempts k with k % n == i, so that n processes can share the
    work (duplicates between shards are removed by the recheck at the start of the next run).
    """
    from tqdm import tqdm

    from s2s.structures.filters import bond_analysis, check_structure, deduplicate
    from s2s.structures.frameworks import library_nets

    folder = Path(folder)
    gen_dir = folder / "generated"
    for sub in ("above_hull", "relaxed", "rechecked_out"):
        (gen_dir / sub).mkdir(parents=True, exist_ok=True)
    log = gen_dir / "attempts.jsonl"
    done = _read_attempts(log)
    todo = [k for k in range(n_attempts) if k not in done and k % shard[1] == shard[0]]
    existing = load_records(folder)
    recheck_generated(folder, existing)
    prune_above_hull(folder, existing, hull_window)
    frameworks = [
        r
        for r in existing
        if r.source in ("framework", "aflow-prototype", "pyxtal-cif")
        and r.n_atoms <= max_framework_atoms
        and r.x == 2.0
        and not r.notes.get("filter")
    ]
    nets = [s for _, _, s in library_nets() if len(s) <= 12]
    relaxer = Relaxer(fmax=fmax, steps=steps)
    bar = tqdm(todo, desc="generate", unit="attempt", mininterval=30)
    for k in bar:
        entry: dict = {"k": k, "seed": seed + k, "generator_version": GENERATOR_VERSION}
        if tuple(weights) != STRATEGY_WEIGHTS:
            entry["weights"] = dict(zip(STRATEGIES, (round(w, 6) for w in weights)))
        t0 = time.time()
        try:
            sd = make_seed(k, seed, frameworks, nets, weights)
        except Exception as err:  # noqa: BLE001 - logged and counted
            entry.update(status="seed_failed", reason=str(err)[:200], seconds=round(time.time() - t0, 2))
            _append(log, entry)
            continue
        entry.update(
            strategy=sd.strategy,
            formula=sd.structure.composition.reduced_formula,
            n_atoms=len(sd.structure),
            **{f"seed_{a}": b for a, b in sd.info.items()},
        )
        try:
            final, relax = relaxer.relax(sd.structure)
        except Exception as err:  # noqa: BLE001
            entry.update(status="relax_failed", reason=str(err)[:200], seconds=round(time.time() - t0, 2))
            _append(log, entry)
            continue
        entry.update(
            relax_seconds=relax.seconds,
            relax_steps=relax.steps,
            converged=relax.converged,
            energy_per_atom=relax.energy_per_atom,
        )
        reasons = [] if relax.converged else ["relaxation not converged"]
        try:
            reasons += check_structure(final, allow_peroxide=sd.allow_peroxide)
        except Exception as err:  # noqa: BLE001
            reasons.append(f"analysis failed: {err}")
        if reasons:
            entry.update(status="rejected", reason="; ".join(reasons)[:300])
            _save_relaxed(gen_dir, k, final, sd, relax)
            _append(log, entry)
            continue
        b = bond_analysis(final)
        rec = StructureRecord(
            id=f"gen-{k:06d}",
            source="generated",
            citation=f"generated here: {sd.strategy} seed cell (numpy seed {seed + k}), relaxed with {relax.version}",
            structure=final,
            relaxation=relax,
            name=f"generated {sd.strategy}",
            notes={
                "strategy": sd.strategy,
                "seed": seed + k,
                "attempt": k,
                **sd.info,
                "n_si_si_bonds": b.n_si_si_bonds,
                "n_peroxide": b.n_peroxide,
                "filter": [],
            },
        )
        kept, dropped = deduplicate([rec], existing=existing, same_spacegroup=False)
        if not kept:
            entry.update(status="duplicate", duplicate_of=dropped[rec.id])
            _append(log, entry)
            continue
        rec.save(folder)
        existing.append(rec)
        entry.update(status="accepted", id=rec.id, seconds=round(time.time() - t0, 2))
        _append(log, entry)
        prune_above_hull(folder, existing, hull_window)
        bar.set_postfix(accepted=sum(r.source == "generated" for r in existing))


def _save_relaxed(gen_dir: Path, k: int, final: Structure, sd: Seed, relax: Relaxation) -> None:
    """Keep a rejected relaxed cell (generated/relaxed/<k>.json) so that it can be re-filtered."""
    d = {
        "k": k,
        "strategy": sd.strategy,
        "allow_peroxide": sd.allow_peroxide,
        "info": sd.info,
        "relaxation": relax.__dict__,
        "structure": final.as_dict(),
    }
    atomic_write_text(gen_dir / "relaxed" / f"{k:06d}.json", json.dumps(d))


def recheck_generated(folder: Path, existing: list[StructureRecord]) -> list[str]:
    """Re-apply the current filter and deduplication to accepted generated records.

    Records that fail now are moved to generated/rechecked_out/ (with the reason in notes).
    Run at the start of every generation run, so that tightened criteria apply to all.
    """
    from s2s.structures.filters import check_structure, deduplicate

    out_dir = Path(folder) / "generated" / "rechecked_out"
    moved = []
    for r in [r for r in existing if r.source == "generated"]:
        why = check_structure(r.structure, allow_peroxide=r.notes.get("strategy") == "peroxide")
        if not why:
            others = [o for o in existing if o is not r and (o.source != "generated" or o.id < r.id)]
            kept, dropped = deduplicate([r], existing=others, same_spacegroup=False)
            if not kept:
                why = [f"duplicate of {dropped[r.id]}"]
        if why:
            r.notes["rechecked_out"] = why
            atomic_write_text(out_dir / f"{r.id}.json", json.dumps(r.to_dict(), indent=1))
            (Path(folder) / f"{r.id}.json").unlink(missing_ok=True)
            existing[:] = [o for o in existing if o is not r]
            moved.append(r.id)
    return moved


def prune_above_hull(folder: Path, existing: list[StructureRecord], window: float) -> list[str]:
    """Keep generated records within window eV/atom of the lowest energy at their composition.

    Records above it go to generated/above_hull/ (with ``notes["e_above_min"]``); records in
    that folder that are within the window again (criteria changed) are moved back.  Also
    stores ``notes["e_above_hull"]``, the distance to the lower hull of energy vs O fraction
    (for information: suboxides always lie above the Si-rich/SiO2 tie line).
    Returns the ids moved out.
    """
    from s2s.structures.filters import composition_distances, hull_distances

    folder = Path(folder)
    out_dir = folder / "generated" / "above_hull"
    parked = [StructureRecord.load(p) for p in sorted(out_dir.glob("gen-*.json"))]
    gen = [r for r in existing if r.source == "generated" and r.relaxation.energy_per_atom is not None]
    pool = gen + parked
    if not pool:
        return []
    x = np.array([r.x for r in pool])
    e = np.array([r.relaxation.energy_per_atom for r in pool])
    above = composition_distances(x, e)
    hull = hull_distances(x / (1 + x), e)
    parked_ids = {id(r) for r in parked}
    moved = []
    for r, d, h in zip(pool, above, hull):
        r.notes["e_above_min"], r.notes["e_above_hull"] = round(float(d), 4), round(float(h), 4)
        inside = d <= window
        if inside and id(r) in parked_ids:
            r.save(folder)
            (out_dir / f"{r.id}.json").unlink(missing_ok=True)
            existing.append(r)
        elif not inside and id(r) not in parked_ids:
            atomic_write_text(out_dir / f"{r.id}.json", json.dumps(r.to_dict(), indent=1))
            (folder / f"{r.id}.json").unlink(missing_ok=True)
            existing[:] = [o for o in existing if o is not r]
            moved.append(r.id)
    return moved
