"""Evaluation of conditional generation over many sites (notebooks 03-06).

Generation itself (cached) is :func:`s2s.model.cache.generate_cached`.

* :func:`evaluate_generation` - per-site metrics (:func:`s2s.geometry.metrics.evaluate_pair`) for
  each alignment method ("paper" and our "best").
* :func:`summary_table` - the issue's ``test_generation`` numbers from those rows
  (:func:`s2s.geometry.metrics.summarize`).
* :func:`first_shell_table` - the paper-aligned 1st-shell RMSD beside the first shell's own
  geometry errors (:func:`s2s.geometry.metrics.first_shell_errors`).
* :func:`pick_cases`, :func:`composition_key`, :func:`group_indices` - small helpers for
  the figures (best / middle / worst case; per-composition grouping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from s2s.environment import Environment
from s2s.geometry.metrics import evaluate_pair, summarize

METHODS = ("paper", "best")
#: The numbers of :func:`summary_table` (besides ``n_test``), in the order the notebooks print them.
SUMMARY_KEYS = (
    "rmsd_shell1",
    "rmsd_shell2",
    "rmsd_shell3",
    "rmsd_all",
    "cn_error_shell1_pct",
    "cn_error_shell2_pct",
    "species_accuracy",
    "validity",
)


# ----------------------------------------------------------------------------- evaluation


def _as_nested(generated, n_targets: int) -> list[list[Environment]]:
    gen = list(generated)
    if len(gen) != n_targets:
        raise ValueError(f"evaluate_generation: {n_targets} targets but {len(gen)} generated entries")
    out = []
    for i, g in enumerate(gen):
        row = [g] if isinstance(g, Environment) else list(g)
        if not row or not all(isinstance(e, Environment) for e in row):
            raise TypeError(
                f"evaluate_generation: generated[{i}] must be an Environment or a non-empty list of Environments"
            )
        out.append(row)
    return out


def evaluate_generation(
    targets: Sequence[Environment],
    generated: Sequence[Environment | Sequence[Environment]],
    methods: Sequence[str] = METHODS,
    *,
    progress: bool = False,
    allow_reflection: bool = False,
) -> list[dict]:
    """Per-site metrics of generated vs target environments, for each alignment method.

    ``generated[i]`` is one Environment or a list of samples for ``targets[i]`` (as
    returned by :func:`s2s.model.cache.generate_cached`); every sample gives one row.  Row keys:
    ``index`` (target index), ``sample``, and for each method in ``methods`` (``"paper"``,
    ``"best"``) the :func:`s2s.geometry.metrics.evaluate_pair` dict under that name (RMSD per
    shell and overall in Å, CN per shell target/generated and % error, species match,
    O fractions).  ``allow_reflection``: the alignments may also mirror (an environment and its
    mirror image have the same spectrum, and an E(3)-equivariant model draws both equally often).
    """
    targets = list(targets)
    if not targets:
        raise ValueError("evaluate_generation: no targets")
    methods = tuple(methods)
    if not methods:
        raise ValueError("evaluate_generation: no alignment methods given")
    gen = _as_nested(generated, len(targets))
    pairs = [(i, j, t, g) for i, (t, row) in enumerate(zip(targets, gen)) for j, g in enumerate(row)]
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="evaluating", unit="site")
    rows = []
    for i, j, t, g in pairs:
        row: dict[str, Any] = {"index": i, "sample": j}
        for m in methods:
            row[m] = evaluate_pair(t, g, method=m, allow_reflection=allow_reflection)
        rows.append(row)
    return rows


def metric_array(rows: Sequence[Mapping], method: str, key: str) -> np.ndarray:
    """One metric of one method over the rows, as a float array (NaN kept)."""
    try:
        return np.array([float(r[method][key]) for r in rows], dtype=np.float64)
    except KeyError as exc:
        raise KeyError(f"metric_array: rows have no {method!r}/{key!r} entry ({exc})") from None


def summary_table(rows: Sequence[Mapping], method: str = "paper", digits: int | None = None) -> dict:
    """The issue's ``test_generation`` numbers for one alignment method.

    Keys: rmsd_shell1, rmsd_shell2, rmsd_shell3, rmsd_all (Å, NaN-skipping means over
    cases), cn_error_shell1_pct, cn_error_shell2_pct (mean per-case relative CN error,
    %), species_accuracy (fraction of cases whose O fraction matches exactly), validity
    (fraction of chemically sane environments, :func:`s2s.geometry.metrics.validity`), n_test (number of cases).
    From :func:`s2s.geometry.metrics.summarize`; ``digits`` rounds the floats.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("summary_table: no rows")
    s = summarize(r[method] for r in rows)
    out: dict[str, Any] = {k: s[k] for k in SUMMARY_KEYS if k in s}
    if digits is not None:
        out = {k: (round(v, digits) if math.isfinite(v) else v) for k, v in out.items()}
    out["n_test"] = int(s["n"])
    return out


#: The numbers of :func:`first_shell_table`: the paper-aligned 1st-shell RMSD, then the first shell on its own.
FIRST_SHELL_KEYS = ("rmsd_shell1", "rmsd_shell1_local", "rmsd_shell1_radial", "angle_shell1_error_deg")


def first_shell_table(rows: Sequence[Mapping], method: str = "paper", digits: int | None = None) -> dict:
    """Where the 1st-shell error sits: :data:`FIRST_SHELL_KEYS` means over the rows of one method.

    ``rmsd_shell1`` (Å) is the paper's number (whole-environment alignment); ``rmsd_shell1_local``,
    ``rmsd_shell1_radial`` (Å) and ``angle_shell1_error_deg`` are the first shell's own geometry
    (:func:`s2s.geometry.metrics.first_shell_errors`), defined on the cases whose first-shell
    count is right, whose share is ``same_shell1_count``; ``n_test`` counts all cases.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("first_shell_table: no rows")
    ev = [r[method] for r in rows]
    missing = [k for k in FIRST_SHELL_KEYS[1:] if k not in ev[0]]
    if missing:
        raise KeyError(f"first_shell_table: rows have no {missing} (made before s2s had first_shell_errors)")
    s = summarize(ev)
    out: dict[str, Any] = {k: s[k] for k in FIRST_SHELL_KEYS}
    out["same_shell1_count"] = float(np.mean([e["cn_gen_shell1"] == e["cn_target_shell1"] for e in ev]))
    if digits is not None:
        out = {k: (round(v, digits) if math.isfinite(v) else v) for k, v in out.items()}
    out["n_test"] = len(ev)
    return out


# ----------------------------------------------------------------------------- helpers


def pick_cases(values: Sequence[float] | np.ndarray, labels: Sequence[str] = ("A", "B", "C")) -> dict[str, int]:
    """Indices of the best (lowest), middle (median rank) and worst finite value, e.g. the
    Fig. 2b cases A/B/C from per-case RMSDs.  Fewer finite values than labels give fewer
    entries (distinct indices only)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    idx = np.flatnonzero(np.isfinite(v))
    if idx.size == 0:
        return {}
    order = idx[np.argsort(v[idx], kind="stable")]
    k = len(labels)
    ranks = [0] if k == 1 else [round(j * (order.size - 1) / (k - 1)) for j in range(k)]
    out: dict[str, int] = {}
    for lab, r in zip(labels, ranks):
        i = int(order[r])
        if i not in out.values():
            out[lab] = i
    return out


def composition_key(x: float) -> str:
    """Composition x of SiO_x as the results-file key: two decimals, e.g. "0.25", "2.00"
    (the amorphous build's format)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"composition_key: x must be finite, got {x}")
    return f"{x:.2f}"


def group_indices(keys: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Indices of each distinct key, keys in sorted order (e.g. sites per composition)."""
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return {k: np.array(groups[k], dtype=np.int64) for k in sorted(groups)}


def spread_indices(n: int, n_max: int | None) -> np.ndarray:
    """``n_max`` indices spread evenly over ``range(n)`` (all of them when ``n_max`` is None or
    >= n), ascending and deterministic; e.g. a small test subset that still spans the split."""
    if n < 0:
        raise ValueError(f"spread_indices: n must be >= 0, got {n}")
    if n_max is None or n_max >= n:
        return np.arange(n, dtype=np.int64)
    if n_max < 1:
        raise ValueError(f"spread_indices: n_max must be >= 1 or None, got {n_max}")
    return np.unique(np.round(np.linspace(0, n - 1, n_max)).astype(np.int64))


def subsample_groups(keys: Sequence[Any], n_per_group: int | None) -> np.ndarray:
    """Indices of at most ``n_per_group`` items of each distinct key (spread evenly within the
    group, :func:`spread_indices`), ascending; all items when ``n_per_group`` is None."""
    keep = [g[spread_indices(len(g), n_per_group)] for g in group_indices(keys).values()]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def composition_keys(records: Sequence[Any]) -> list[str]:
    """:func:`composition_key` of each site record: ``meta["composition_x"]`` when present and
    finite (the amorphous set: the cell's nominal x), else the record's ``x`` (the same rule as
    :func:`s2s.studies.manifold.composition_labels`).  Raises ValueError naming the record when
    neither is a finite number."""
    out = []
    for i, r in enumerate(records):
        x = (getattr(r, "meta", None) or {}).get("composition_x")
        try:
            x = float(x)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            x = float(getattr(r, "x", math.nan))
        if not math.isfinite(x):
            sid = getattr(r, "structure_id", "?")
            raise ValueError(f"composition_keys: record {i} ({sid}) has no finite composition_x or x")
        out.append(composition_key(x))
    return out


def generation_inputs(records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(spectra (M, 200), n_atoms (M,)) of site records for :func:`s2s.model.cache.generate_cached` under the
    paper's protocol (each target's own atom count).  Notebooks that must hit each other's
    cache entries (03/04, 05/06) build their inputs with this from the same records."""
    records = list(records)
    if not records:
        raise ValueError("generation_inputs: no records")
    spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in records])
    n_atoms = np.array([r.environment.n_atoms for r in records], dtype=np.int64)
    return spectra, n_atoms


def atom_count_scores(probabilities: np.ndarray, n_atoms: Sequence[int] | np.ndarray) -> dict[str, float]:
    """How well the atom-count head p(N | spectrum) (what ``s2s predict`` draws N from) knows the true counts.

    ``probabilities`` (M, n_max): p(N = k + 1 | s) (:meth:`s2s.model.natoms.AtomCountHead.probabilities`);
    ``n_atoms`` (M,): the targets' counts.  Returns ``n``, ``top1`` (share of sites whose most probable N is the
    true one), ``mean_abs_error`` (mean |mode - N|, atoms) and ``log_likelihood`` (mean log p(N_true | s), nats;
    a count beyond n_max or of probability 0 counts as log 1e-12)."""
    p = np.asarray(probabilities, dtype=np.float64)
    n = np.asarray(n_atoms, dtype=np.int64)
    if p.ndim != 2 or len(p) != len(n) or len(n) == 0:
        raise ValueError(f"atom_count_scores: probabilities (M, n_max) and M counts, got {p.shape} and {n.shape}")
    mode = p.argmax(axis=1) + 1
    inside = (n >= 1) & (n <= p.shape[1])
    p_true = np.where(inside, p[np.arange(len(n)), np.clip(n, 1, p.shape[1]) - 1], 0.0)
    return {
        "n": int(len(n)),
        "top1": float(np.mean(mode == n)),
        "mean_abs_error": float(np.mean(np.abs(mode - n))),
        "log_likelihood": float(np.mean(np.log(np.maximum(p_true, 1e-12)))),
    }


def atom_count_table(model, records: Sequence[Any]) -> dict[str, float]:
    """:func:`atom_count_scores` of a loaded :class:`s2s.model.S2SModel` on site records (``.spectrum``,
    ``.environment``), the spectra read as they are."""
    import torch

    spectra, n_atoms = generation_inputs(records)
    dev = next(model.parameters()).device
    probs = model.natoms.probabilities(torch.as_tensor(spectra, dtype=torch.float32, device=dev)).cpu().numpy()
    return atom_count_scores(probs, n_atoms)
