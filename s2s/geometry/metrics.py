"""Evaluation metrics for generated environments (paper, Results, Figs. 2-3).

Per target/generated pair (:func:`evaluate_pair`):

* RMSD (Å) after alignment (:mod:`s2s.geometry.align`), per shell k = 1, 2, 3 over the
  matched atoms whose **target** shell label is k, and overall.  ``rmsd_all`` is
  :attr:`Alignment.rmsd` (all matched pairs, the excited O included, which
  contributes distance 0); ``rmsd_neighbours`` excludes the excited O.  NaN when
  the target has no (matched) atom in that shell.  With unequal atom counts only
  the min(N, M) matched pairs enter the RMSD.
* Coordination number per shell: target CN_k = number of target atoms with shell
  label k; generated CN_k = number of generated atoms that :func:`~s2s.geometry.shells.assign_shells`
  (the same graph-hop rule as the environment builder, 2.0 Å cutoff from the
  excited O at index 0) puts in shell k.  Per-case relative error in %:
  ``|CN_gen - CN_target| / CN_target * 100`` (NaN when CN_target = 0).
* Species match (the paper's species accuracy): the oxygen fraction of the
  generated environment equals the target's exactly (compared as integers,
  n_O_gen * N_target == n_O_target * N_gen).
* Validity (:func:`validity`, not in the paper): the generated environment is chemistry:
  its first-shell count equals the target's, every Si-O pair closer than 2.0 Å lies at
  1.45-1.85 Å, and no O-O pair is closer than 2.0 Å unless the target has one.
* The first shell's own geometry (:func:`first_shell_errors`, not in the paper), free of the
  whole-environment alignment: ``rmsd_shell1_radial`` (the sorted excited-O-neighbour distances,
  what EXAFS fits), ``rmsd_shell1_local`` (the first shell aligned on itself) and
  ``angle_shell1_error_deg`` (the neighbour-O-neighbour angle of two-coordinated O).  The
  paper-aligned ``rmsd_shell1`` adds to these the orientation of the first shell relative to the
  outer shells, which the alignment of all atoms trades against the outer shells' errors.

:func:`summarize` averages over cases: NaN-skipping means of the RMSDs and of the
per-case CN relative errors (the paper's 1.86 % / 4.27 % for shells 1 / 2 are read
as this mean over test cases), and species_accuracy = fraction of cases whose
oxygen fraction matches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.spatial.distance import cdist

from s2s.environment import DEFAULT_CUTOFF, SI, Environment, O
from s2s.geometry.align import _injections, align, kabsch_batched
from s2s.geometry.shells import N_SHELLS, angles_deg, assign_shells, coordination_numbers


def cn_relative_error_pct(cn_gen: float, cn_target: float) -> float:
    """|CN_gen - CN_target| / CN_target * 100 (%), NaN when CN_target == 0."""
    if cn_target == 0:
        return math.nan
    return abs(cn_gen - cn_target) / cn_target * 100.0


def species_match(target: Environment, generated: Environment) -> bool:
    """True when the oxygen fractions are exactly equal (integer comparison)."""
    n_t, n_g = target.n_atoms, generated.n_atoms
    o_t = int(np.sum(target.species == O))
    o_g = int(np.sum(generated.species == O))
    return o_g * n_t == o_t * n_g


#: Si-O bond lengths accepted by :func:`validity`, Å (silicates: 1.58-1.68; suboxides a little wider).
SI_O_RANGE = (1.45, 1.85)
#: Pairs closer than this are bonded for :func:`validity`, Å (the environment cutoff).
BOND_CUTOFF = 2.0
#: O-O pairs closer than this are rejected by :func:`validity` unless the target has one, Å.
O_O_MIN = 2.0


def _pair_distances(env: Environment, a: int, b: int) -> np.ndarray:
    """Distances (Å) of all species-a / species-b pairs of an environment (each unordered pair once)."""
    c = env.coords
    d = cdist(c, c)
    sa, sb = env.species == a, env.species == b
    mask = sa[:, None] & sb[None, :]
    if a == b:
        mask = np.triu(mask, k=1)
    else:
        mask = mask | mask.T
        mask = np.triu(mask, k=1)
    return d[mask]


def bond_sanity(env: Environment) -> dict:
    """The target-free part of :func:`validity`: ``si_o`` (every Si-O pair closer than
    :data:`BOND_CUTOFF` lies in :data:`SI_O_RANGE`, Å) and ``o_o`` (no O-O pair closer than
    :data:`O_O_MIN`, Å); ``sane`` = both.  Used to pick among samples without the target."""
    if env.n_atoms == 0 or not np.all(np.isfinite(env.coords)):
        return {"sane": False, "si_o": False, "o_o": False}
    sio = _pair_distances(env, SI, O)
    sio = sio[sio < BOND_CUTOFF]
    out = {
        "si_o": bool(np.all((sio >= SI_O_RANGE[0]) & (sio <= SI_O_RANGE[1]))),
        "o_o": not bool(np.any(_pair_distances(env, O, O) < O_O_MIN)),
    }
    return {"sane": out["si_o"] and out["o_o"], **out}


def validity(target: Environment, generated: Environment, cutoff: float = DEFAULT_CUTOFF) -> dict:
    """Is the generated environment chemically sane?  Keys: valid and its three parts (bools).

    ``shell1_count``: as many first-shell atoms (2.0 Å graph-hop rule) as the target;
    ``si_o``: every Si-O pair closer than :data:`BOND_CUTOFF` lies in :data:`SI_O_RANGE` (Å);
    ``o_o``: no O-O pair closer than :data:`O_O_MIN` (Å), unless the target has one (peroxide-like
    pairs occur in a few generated crystals).
    """
    if generated.n_atoms == 0 or not np.all(np.isfinite(generated.coords)):
        return {"valid": False, "shell1_count": False, "si_o": False, "o_o": False}
    cn_t = coordination_numbers(target.shell)[0]
    cn_g = coordination_numbers(assign_shells(generated.coords - generated.coords[0], cutoff))[0]
    bonds = bond_sanity(generated)
    target_has_short = bool(np.any(_pair_distances(target, O, O) < O_O_MIN))
    out = {"shell1_count": bool(cn_g == cn_t), "si_o": bonds["si_o"], "o_o": target_has_short or bonds["o_o"]}
    out["valid"] = all(out.values())
    return out


#: Largest first shell whose pairings :func:`first_shell_errors` searches exhaustively (6! = 720).
LOCAL_MAX_ATOMS = 6


def _first_shell(env: Environment, shell: np.ndarray) -> np.ndarray:
    """(n1, 3) first-shell positions relative to the excited O (Å)."""
    c = env.coords - env.coords[0]
    return c[np.asarray(shell) == 1]


def first_shell_errors(target: Environment, generated: Environment, cutoff: float = DEFAULT_CUTOFF) -> dict:
    """Errors of the first shell's own geometry, without the whole-environment alignment.

    The target's first shell is its shell label 1; the generated one is what
    :func:`~s2s.geometry.shells.assign_shells` (``cutoff`` in Å) puts in shell 1, as for the CN metric.  With equal
    first-shell counts n1 (else all NaN):

    * ``rmsd_shell1_radial`` (Å): RMS difference of the sorted excited-O-to-neighbour distances,
      the quantity EXAFS fits (the paper compares its 0.063 Å with EXAFS's 0.01-0.02 Å);
    * ``rmsd_shell1_local`` (Å): RMSD over the n1 neighbours after the best pairing (all n1!
      for n1 <= :data:`LOCAL_MAX_ATOMS`, else NaN) and the best rotation about the excited O,
      reflections allowed (a spectrum cannot fix chirality; for n1 <= 2 they change nothing);
    * ``angle_shell1_error_deg``: |angle(n_a, O, n_b) generated - target| for n1 == 2
      (the Si-O-Si angle of a bridging O), else NaN.
    """
    nan = {"rmsd_shell1_radial": math.nan, "rmsd_shell1_local": math.nan, "angle_shell1_error_deg": math.nan}
    if generated.n_atoms == 0 or not np.all(np.isfinite(generated.coords)):
        return nan
    a = _first_shell(target, target.shell)
    b = _first_shell(generated, assign_shells(generated.coords - generated.coords[0], cutoff))
    n = a.shape[0]
    if n == 0 or b.shape[0] != n:
        return nan
    ra, rb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    out = dict(nan)
    out["rmsd_shell1_radial"] = float(np.sqrt(np.mean((np.sort(ra) - np.sort(rb)) ** 2)))
    if n <= LOCAL_MAX_ATOMS:
        _, rmsd = kabsch_batched(b[_injections(n, n)], a, allow_reflection=True)  # every pairing
        out["rmsd_shell1_local"] = float(rmsd.min())
    if n == 2:
        out["angle_shell1_error_deg"] = float(abs(angles_deg(np.zeros(3), b)[0] - angles_deg(np.zeros(3), a)[0]))
    return out


def _shell_rmsd(d2: np.ndarray, mask: np.ndarray) -> float:
    """RMSD over the entries of squared distances d2 selected by mask (NaN entries = unmatched)."""
    sel = d2[mask & np.isfinite(d2)]
    return float(np.sqrt(sel.mean())) if sel.size else math.nan


def evaluate_pair(
    target: Environment,
    generated: Environment,
    method: str = "paper",
    cutoff: float = DEFAULT_CUTOFF,
    **align_kwargs,
) -> dict:
    """All metrics for one target/generated pair; see the module docstring.

    ``method`` is the alignment, "paper" or "best"; ``cutoff`` (Å) is the bond
    cutoff for :func:`~s2s.geometry.shells.assign_shells` on the generated atoms.  Keys:
    rmsd_all, rmsd_neighbours, rmsd_shell{1,2,3} (Å); cn_target_shell{k},
    cn_gen_shell{k}, cn_error_shell{k}_pct; species_match (bool), valid (bool);
    rmsd_shell1_radial, rmsd_shell1_local (Å), angle_shell1_error_deg (:func:`first_shell_errors`);
    o_frac_target, o_frac_gen, n_target, n_generated, n_matched, method.
    """
    a = align(target, generated, method=method, **align_kwargs)
    t = target.coords - target.coords[0]
    d2 = np.sum((t - a.aligned) ** 2, axis=1)  # NaN rows for unmatched target atoms
    out: dict = {
        "method": a.method,
        "rmsd_all": a.rmsd,
        "rmsd_neighbours": _shell_rmsd(d2, np.arange(target.n_atoms) > 0),
    }
    for k in range(1, N_SHELLS + 1):
        out[f"rmsd_shell{k}"] = _shell_rmsd(d2, target.shell == k)
    cn_t = coordination_numbers(target.shell)
    cn_g = coordination_numbers(assign_shells(generated.coords - generated.coords[0], cutoff))
    for k in range(1, N_SHELLS + 1):
        out[f"cn_target_shell{k}"] = int(cn_t[k - 1])
        out[f"cn_gen_shell{k}"] = int(cn_g[k - 1])
        out[f"cn_error_shell{k}_pct"] = cn_relative_error_pct(cn_g[k - 1], cn_t[k - 1])
    out["species_match"] = species_match(target, generated)
    out["valid"] = validity(target, generated, cutoff)["valid"]
    out.update(first_shell_errors(target, generated, cutoff))
    out["o_frac_target"] = target.oxygen_fraction()
    out["o_frac_gen"] = generated.oxygen_fraction()
    out["n_target"] = target.n_atoms
    out["n_generated"] = generated.n_atoms
    out["n_matched"] = a.n_matched
    return out


_MEAN_KEYS = (
    "rmsd_all",
    "rmsd_neighbours",
    "rmsd_shell1",
    "rmsd_shell2",
    "rmsd_shell3",
    "cn_error_shell1_pct",
    "cn_error_shell2_pct",
    "cn_error_shell3_pct",
)
#: Means of :func:`first_shell_errors`, written by :func:`summarize` when every row has them.
_FIRST_SHELL_KEYS = ("rmsd_shell1_radial", "rmsd_shell1_local", "angle_shell1_error_deg")


def _nanmean(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def summarize(results: Iterable[dict]) -> dict:
    """Means over cases of :func:`evaluate_pair` dicts.

    RMSDs and CN relative errors: NaN-skipping means over cases (a case with an
    empty target shell does not count for that shell).  species_accuracy: fraction
    of cases with ``species_match``; validity and the :func:`first_shell_errors` means
    (rmsd_shell1_radial, rmsd_shell1_local in Å, angle_shell1_error_deg) when every row has
    them.  n: number of cases.
    """
    results = list(results)
    if not results:
        raise ValueError("summarize: no results given")
    out = {k: _nanmean([r[k] for r in results]) for k in _MEAN_KEYS}
    out["species_accuracy"] = float(np.mean([bool(r["species_match"]) for r in results]))
    if all("valid" in r for r in results):  # rows cached before validity existed have none
        out["validity"] = float(np.mean([bool(r["valid"]) for r in results]))
    for k in _FIRST_SHELL_KEYS:  # rows made before these existed have none
        if all(k in r for r in results):
            out[k] = _nanmean([r[k] for r in results])
    out["n"] = len(results)
    return out
