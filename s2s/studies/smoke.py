"""A scientific smoke test: the shipped models on a fixed, small set of test sites, judged against bounds.

The unit tests check the building blocks; this checks that the pieces still add up to the reported
science (``figures/results.json``): the generative model (few DDIM steps), the forward model (cosine of
its predicted spectrum to the true one) and template matching, each on the same few sites of every
test-split structure (:func:`smoke_sites`), scored as notebook 03/04 score them (paper alignment,
:func:`s2s.studies.evaluate.summary_table`).

* :func:`smoke_sites` - the fixed sites (a few of every test structure); :func:`generation_numbers`,
  :func:`forward_numbers`, :func:`template_numbers` - their numbers; :func:`smoke_numbers` - all three.
* :func:`check_bounds` - the violations of a bounds table (empty: inside).  The bounds, how they were
  derived and the spread they came from are in ``tests/smoke_bounds.json`` (``scripts/smoke_bounds.py``
  measures the spread over seeds and writes that file).

``spectra`` arguments let a caller pass other spectra than the sites' own (e.g. rolled by one site: a
mispaired input), so the check can be shown to reject it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from s2s.forward.model import cosine
from s2s.model.sample import generate
from s2s.retrieval.template import template_match
from s2s.studies.evaluate import evaluate_generation, generation_inputs, group_indices, spread_indices, summary_table

#: The generation numbers the smoke test bounds (paper alignment, :func:`summary_table` keys).
GENERATION_KEYS = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity", "cn_error_shell1_pct")
#: The template-matching numbers it bounds.
TEMPLATE_KEYS = ("rmsd_shell1", "species_accuracy", "validity")


@dataclass(frozen=True)
class SmokeSettings:
    """What the smoke test runs: ``per_structure`` test sites of each test structure (:func:`smoke_sites`),
    ``n_steps`` DDIM steps (deterministic, eta 0) from ``seed``, one sample per site with the target's atom count."""

    per_structure: int = 4
    n_steps: int = 50
    seed: int = 0
    sampler: str = "ddim"

    def to_dict(self) -> dict:
        return asdict(self)


def smoke_sites(dataset, per_structure: int) -> list:
    """Up to ``per_structure`` records of each test-split structure (spread evenly over its sites), in
    round-robin order over the structures (sorted by id): neighbours in the list always come from
    different structures, so a list rolled by one pairs every spectrum with another crystal's site."""
    test = list(dataset.test)
    groups = group_indices([r.structure_id for r in test])
    picked = [g[spread_indices(len(g), per_structure)] for g in groups.values()]
    order = []
    for j in range(max(len(p) for p in picked)):
        order += [int(p[j]) for p in picked if j < len(p)]
    return [test[i] for i in order]


def _rounded(d: Mapping[str, Any], digits: int = 4) -> dict:
    return {k: (round(float(v), digits) if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


def generation_numbers(
    model,
    records: Sequence,
    settings: SmokeSettings = SmokeSettings(),
    *,
    seed: int | None = None,
    spectra: np.ndarray | None = None,
) -> dict:
    """The :data:`GENERATION_KEYS` of one sample per site (the target's atom count), paper alignment.

    ``model``: an :class:`s2s.model.S2SModel`; ``spectra``: the conditioning spectra (default: the
    sites' own, :func:`s2s.studies.evaluate.generation_inputs`); ``seed`` overrides ``settings.seed``."""
    own, n_atoms = generation_inputs(records)
    spectra = own if spectra is None else np.asarray(spectra, dtype=np.float64)
    with torch.no_grad():
        gen = generate(
            model,
            spectra,
            n_atoms,
            n_samples=1,
            seed=settings.seed if seed is None else int(seed),
            n_steps=settings.n_steps,
            sampler=settings.sampler,
            buckets=True,
        )
    rows = evaluate_generation([r.environment for r in records], gen, methods=("paper",))
    table = summary_table(rows, "paper")
    return _rounded({k: table[k] for k in GENERATION_KEYS})


def forward_numbers(forward_model, records: Sequence, *, spectra: np.ndarray | None = None) -> dict:
    """``cosine``: the mean cosine of the forward model's spectrum of each site's true environment to the
    site's spectrum (``spectra``: other spectra to compare with, default the sites' own)."""
    pred = forward_model.predict([r.environment for r in records])
    true = np.stack([r.spectrum for r in records]) if spectra is None else np.asarray(spectra, dtype=np.float64)
    return _rounded({"cosine": float(np.mean(cosine(pred, true)))})


def template_numbers(train_records: Sequence, records: Sequence, *, spectra: np.ndarray | None = None) -> dict:
    """The :data:`TEMPLATE_KEYS` of template matching (the environment of the training spectrum nearest in
    MSE, sites of the same structure excluded; :func:`s2s.retrieval.template.template_match`)."""
    query = np.stack([r.spectrum for r in records]) if spectra is None else np.asarray(spectra, dtype=np.float64)
    tm = template_match(
        query,
        [r.structure_id for r in records],
        np.stack([r.spectrum for r in train_records]),
        [r.structure_id for r in train_records],
        [r.environment for r in train_records],
    )
    rows = evaluate_generation([r.environment for r in records], tm.environments, methods=("paper",))
    table = summary_table(rows, "paper")
    return _rounded({k: table[k] for k in TEMPLATE_KEYS})


def smoke_numbers(model, forward_model, dataset, settings: SmokeSettings = SmokeSettings()) -> dict:
    """``{"generation": ..., "forward": ..., "template": ...}`` on :func:`smoke_sites`."""
    records = smoke_sites(dataset, settings.per_structure)
    return {
        "generation": generation_numbers(model, records, settings),
        "forward": forward_numbers(forward_model, records),
        "template": template_numbers(list(dataset.train), records),
    }


def check_bounds(numbers: Mapping[str, Mapping[str, float]], bounds: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """The violations of ``bounds`` by ``numbers``, one line each (an empty list: every number inside).

    ``bounds[part][key]`` is ``{"min": a}``, ``{"max": b}`` or both; ``numbers[part][key]`` must lie in
    [a, b].  A bounded number that is missing or not finite is a violation too."""
    out = []
    for part, keys in bounds.items():
        for key, b in keys.items():
            v = numbers.get(part, {}).get(key)
            if v is None or not math.isfinite(float(v)):
                out.append(f"{part}.{key}: no finite value ({v!r})")
                continue
            if "min" in b and v < b["min"]:
                out.append(f"{part}.{key} = {v:.4g} below its bound {b['min']:.4g}")
            if "max" in b and v > b["max"]:
                out.append(f"{part}.{key} = {v:.4g} above its bound {b['max']:.4g}")
    return out


__all__ = [
    "GENERATION_KEYS",
    "TEMPLATE_KEYS",
    "SmokeSettings",
    "check_bounds",
    "forward_numbers",
    "generation_numbers",
    "smoke_numbers",
    "smoke_sites",
    "template_numbers",
]
