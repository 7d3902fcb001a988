"""The test split read from reference-method (first-principles) spectra (issue 29, item 5).

A user's spectrum never comes from our own simulator (GFN1-xTB Z+1).  This study gives a model the GPAW
half-core-hole spectrum of each test site that has one (:mod:`s2s.simulate.reference_sites`) and scores what
it draws the way notebook 03 scores the xTB input, on the *same sites*:

* ``single``: one sample per spectrum (the target's atom count; ``n_steps`` of the ancestral sampler, as
  ``test_generation``), the table of :func:`s2s.studies.evaluate.summary_table` (paper alignment: RMSD per
  shell in Å, CN error in %, species accuracy, validity), the first shell's own geometry
  (:func:`s2s.studies.evaluate.first_shell_table`) and 95 % intervals over the test structures;
* ``xtb_input``: the same for the xTB spectra of the same sites (the paired comparison: same targets, same
  seed, only the input's simulator differs);
* ``composition_medoid_of_k``: the consensus of K DDIM samples (:mod:`s2s.studies.best_of_k`, what
  ``s2s predict`` writes first) with its win rate over template matching;
* ``template``: template matching (:func:`s2s.retrieval.template.template_match`) of the reference spectrum
  in a *reference-fidelity* library (``library_records``: the training sites with a reference spectrum),
  scored like the samples.

The test split is for reporting only: nothing here is used to choose a model or a recipe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from s2s.model.cache import BestOfKSettings, generate_cached
from s2s.retrieval.template import template_match
from s2s.studies.best_of_k import evaluate_best_of_k
from s2s.studies.bootstrap import DEFAULT_BOOTSTRAP, describe, summary_intervals
from s2s.studies.evaluate import evaluate_generation, first_shell_table, generation_inputs, summary_table


def paired_by_site(reference: Sequence[Any], xtb: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The sites (``.key``: structure id, O site index) present in both lists, in the order of ``reference``:
    ``(reference records, xtb records)``, element ``i`` of both being the same site.  Raises ``ValueError``
    when no site is shared."""
    by_key = {r.key: r for r in xtb}
    ref = [r for r in reference if r.key in by_key]
    if not ref:
        raise ValueError("paired_by_site: no site has both a reference and an xTB record")
    return ref, [by_key[r.key] for r in ref]


def _rounded(table: dict[str, Any], digits: int) -> dict[str, Any]:
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in table.items()}


def single_sample_table(
    model_path: str | os.PathLike,
    records: Sequence[Any],
    *,
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    digits: int = 4,
) -> dict[str, Any]:
    """One sample per record's spectrum (ancestral sampler, ``n_steps`` of T; None: all), scored against the
    record's environment: the summary table, ``first_shell`` and ``ci95`` over ``.structure_id``."""
    spectra, n_atoms = generation_inputs(records)
    generated = generate_cached(
        model_path, spectra, n_atoms, n_samples=1, n_steps=n_steps, seed=seed, cache_dir=cache_dir, progress=False
    )
    rows = evaluate_generation([r.environment for r in records], generated, methods=("paper",))
    groups = [r.structure_id for r in records]
    out = _rounded(summary_table(rows, "paper"), digits)
    out["first_shell"] = first_shell_table(rows, "paper", digits=digits)
    out["ci95"] = summary_intervals(rows, groups, "paper", digits=digits)
    out["n_structures"] = len(set(groups))
    return out


def template_table(records: Sequence[Any], library: Sequence[Any], digits: int = 4) -> dict[str, Any]:
    """Template matching of each record's spectrum in ``library`` (same-structure entries excluded), the
    matched environments scored like samples: summary table and ``ci95`` over ``.structure_id``."""
    tm = template_match(
        np.stack([np.asarray(r.spectrum, np.float64) for r in records]),
        [r.structure_id for r in records],
        np.stack([np.asarray(r.spectrum, np.float64) for r in library]),
        [r.structure_id for r in library],
        [r.environment for r in library],
    )
    rows = evaluate_generation([r.environment for r in records], tm.environments, methods=("paper",))
    out = _rounded(summary_table(rows, "paper"), digits)
    out["ci95"] = summary_intervals(rows, [r.structure_id for r in records], "paper", digits=digits)
    out["library_size"] = len(library)
    return out


def evaluate_reference_input(
    model_path: str | os.PathLike,
    forward,
    reference_records: Sequence[Any],
    xtb_records: Sequence[Any],
    library_records: Sequence[Any],
    *,
    n_steps: int | None = None,
    seed: int = 0,
    consensus: BestOfKSettings = BestOfKSettings(),
    cache_dir: str | os.PathLike | None = None,
    digits: int = 4,
) -> dict[str, Any]:
    """The study of the module docstring on the sites of ``reference_records`` that also have an xTB record.

    ``forward``: the forward model (:class:`s2s.forward.model.ForwardModel`) that best-of-k needs for its
    other picks; ``library_records``: the template library (reference fidelity).  Returns ``single`` (also
    the top-level keys, as ``test_generation``), ``xtb_input``, ``composition_medoid_of_k``, ``template``,
    ``n_test``, ``n_structures``, ``sites``, ``ci95_method`` and the settings."""
    ref, xtb = paired_by_site(reference_records, xtb_records)
    if not library_records:
        raise ValueError("evaluate_reference_input: empty template library")
    single = single_sample_table(model_path, ref, n_steps=n_steps, seed=seed, cache_dir=cache_dir, digits=digits)
    paired = single_sample_table(model_path, xtb, n_steps=n_steps, seed=seed, cache_dir=cache_dir, digits=digits)
    bok = evaluate_best_of_k(
        model_path, forward, ref, list(library_records), consensus, cache_dir=cache_dir, digits=digits, intervals=True
    )
    n_structures = single["n_structures"]
    return {
        **single,
        "xtb_input": paired,
        "composition_medoid_of_k": {
            **bok["composition_medoid_of_k"],
            "k": consensus.k,
            "sampler": consensus.sampler,
            "n_steps": consensus.n_steps,
        },
        "template": template_table(ref, library_records, digits),
        "sites": [f"{r.structure_id}:{r.site_index}" for r in ref],
        "ci95_method": describe(DEFAULT_BOOTSTRAP, n_structures),
        "n_steps": n_steps,
        "seed": seed,
    }


__all__ = ["paired_by_site", "single_sample_table", "template_table", "evaluate_reference_input"]
