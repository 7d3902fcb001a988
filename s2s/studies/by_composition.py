"""Generation scored per composition x of SiO_x: one glass family at a time (notebook 05).

A family is a set of amorphous O sites (``data/amorphous/amorphous.h5``: the paper's Tersoff
melt-quench glasses; ``data/amorphous/network/amorphous.h5``: the four-fold ``network`` glasses).
:func:`evaluate_family` scores the generated environments against the targets per x (paper and
best alignment), and template matching against the crystalline training split (SOAP similarity,
the paper's win rule); :func:`family_result` is the JSON block of ``figures/results.json``
(``amorphous_generation``, and ``amorphous_generation.network`` for the second family).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2s.environment import Environment
from s2s.retrieval.template import TemplateMatch, compare_with_generation, template_match
from s2s.studies.evaluate import evaluate_generation, first_shell_table, group_indices, summary_table


@dataclass
class FamilyEvaluation:
    """Per-site rows (:func:`s2s.studies.evaluate.evaluate_generation`), their composition keys, the
    per-x summary tables {"paper"|"best": {x: table}}, the template match and its comparison with the
    first sample (``cmp``: ``win``, ``gap`` per site), the model's win rate per x, and the per-x
    summary of the template environments themselves (paper alignment)."""

    rows: list[dict]
    keys: list[str]
    groups: dict[str, np.ndarray]
    row_groups: dict[str, np.ndarray]
    per_comp: dict[str, dict[str, dict]]
    template: TemplateMatch
    cmp: dict
    win_rate: dict[str, float]
    template_per_comp: dict[str, dict]


def evaluate_family(
    targets: Sequence[Environment],
    generated: Sequence[Sequence[Environment]],
    keys: Sequence[str],
    spectra: np.ndarray,
    train_spectra: np.ndarray,
    train_envs: Sequence[Environment],
    progress: bool = False,
) -> FamilyEvaluation:
    """Score one family: ``targets`` (M,), ``generated`` (M lists of samples), ``keys`` (M,) the
    composition of each site ("0.25" ... "2.00"), ``spectra`` (M, 200) the inputs, the template
    database ``train_spectra`` (R, 200) / ``train_envs`` (R,) (no structure shared: nothing excluded)."""
    keys = list(keys)
    if not (len(targets) == len(generated) == len(keys) == len(spectra)):
        raise ValueError(
            f"evaluate_family: {len(targets)} targets, {len(generated)} generated, {len(keys)} keys, "
            f"{len(spectra)} spectra; expected one of each per site"
        )
    rows = evaluate_generation(targets, generated, methods=("paper", "best"), progress=progress)
    row_groups = group_indices([keys[r["index"]] for r in rows])
    per_comp = {
        m: {k: summary_table([rows[i] for i in idx], m) for k, idx in row_groups.items()} for m in ("paper", "best")
    }
    tm = template_match(spectra, None, train_spectra, None, train_envs)
    cmp = compare_with_generation(targets, [g[0] for g in generated], tm.environments, tm.mse)
    groups = group_indices(keys)
    win_rate = {k: float(cmp["win"][idx].mean()) for k, idx in groups.items()}
    t_rows = evaluate_generation(targets, [[e] for e in tm.environments], methods=("paper",))
    template_per_comp = {k: summary_table([t_rows[i] for i in idx], "paper") for k, idx in groups.items()}
    return FamilyEvaluation(rows, keys, groups, row_groups, per_comp, tm, cmp, win_rate, template_per_comp)


def _num(v, digits: int = 4):
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def family_result(ev: FamilyEvaluation, **extra) -> dict:
    """The ``figures/results.json`` block of one family: maps x -> value (NaN as null) for
    rmsd_shell1, rmsd_all, species_accuracy, model_win_rate, n, best_alignment {rmsd_shell1,
    rmsd_all}, template {rmsd_shell1, species_accuracy} and first_shell {rmsd_shell1_local,
    rmsd_shell1_radial (Å), angle_shell1_error_deg, same_shell1_count} (the first shell on its own,
    :func:`s2s.studies.evaluate.first_shell_table`); ``extra`` (sampling settings) appended."""
    p, b = ev.per_comp["paper"], ev.per_comp["best"]
    fs = {k: first_shell_table([ev.rows[i] for i in idx], "paper") for k, idx in ev.row_groups.items()}
    return {
        "rmsd_shell1": {k: _num(p[k]["rmsd_shell1"]) for k in ev.row_groups},
        "rmsd_all": {k: _num(p[k]["rmsd_all"]) for k in ev.row_groups},
        "species_accuracy": {k: _num(p[k]["species_accuracy"]) for k in ev.row_groups},
        "model_win_rate": {k: _num(v) for k, v in ev.win_rate.items()},
        "n": {k: int(len(idx)) for k, idx in ev.groups.items()},
        "best_alignment": {
            "rmsd_shell1": {k: _num(b[k]["rmsd_shell1"]) for k in ev.row_groups},
            "rmsd_all": {k: _num(b[k]["rmsd_all"]) for k in ev.row_groups},
        },
        "template": {
            "rmsd_shell1": {k: _num(t["rmsd_shell1"]) for k, t in ev.template_per_comp.items()},
            "species_accuracy": {k: _num(t["species_accuracy"]) for k, t in ev.template_per_comp.items()},
        },
        "first_shell": {
            key: {k: _num(t[key]) for k, t in fs.items()}
            for key in ("rmsd_shell1_local", "rmsd_shell1_radial", "angle_shell1_error_deg", "same_shell1_count")
        },
        **extra,
    }


__all__ = ["FamilyEvaluation", "evaluate_family", "family_result"]
