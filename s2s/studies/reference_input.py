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
* ``mapped_input`` (with an ``input_map``): ``single`` again, the reference spectra first made xTB-like by
  a fidelity map (:mod:`s2s.forward.fidelity_map`, what ``s2s predict --input-map`` does);
* ``template``: template matching (:func:`s2s.retrieval.template.template_match`) of the reference spectrum
  in a *reference-fidelity* library (``library_records``: the training sites with a reference spectrum),
  scored like the samples, and the single sample's win rate over it (notebook 04's rule).

Every table also carries ``subsets``: the same table (and its intervals) for the SiO2 sites alone
(:data:`SUBSETS`), the composition of the paper's test set and of most silica a user measures.

The test split is for reporting only: nothing here is used to choose a model or a recipe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2s.model.cache import BestOfKSettings, generate_cached
from s2s.retrieval.template import compare_with_generation, template_match
from s2s.simulate.reference_sites import load_fidelity
from s2s.studies.best_of_k import evaluate_best_of_k
from s2s.studies.bootstrap import DEFAULT_BOOTSTRAP, describe, interval, resampled_means, summary_intervals
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


#: The sites of the small (CI) runs of notebooks 03 and 04: fixed, because the store grows with the build and the
#: small runs' committed references (notebooks/references/) must not.  Test sites, and the template library's
#: training sites by structure.
SMALL_TEST_SITES = (("gen-000061", 4), ("gen-000214", 7), ("gen-000438", 11), ("gen-000711", 11))
SMALL_LIBRARY_SITES = {"gen-000018": (4, 5, 6), "gen-000024": (4, 5, 6, 7, 8, 9), "gen-000033": (4, 5, 6, 7, 8, 9)}


def reference_test_inputs(
    dataset_path: str | os.PathLike, reference_store: str | os.PathLike | None = None, small: bool = False
) -> tuple[list[Any], list[Any], list[Any]]:
    """``(reference test records, xTB test records, reference training records)`` of the dataset file and the
    reference store (default: the resource ``reference_sites``), for :func:`evaluate_reference_input`;
    ``small``: only :data:`SMALL_TEST_SITES` and :data:`SMALL_LIBRARY_SITES`."""
    ref = load_fidelity(dataset_path, "reference", reference_store)
    xtb = load_fidelity(dataset_path, "xtb")
    test, library = list(ref.test), list(ref.train)
    if small:
        test = [r for r in test if r.key in set(SMALL_TEST_SITES)]
        library = [r for r in library if r.site_index in SMALL_LIBRARY_SITES.get(r.structure_id, ())]
    return test, list(xtb.test), library


def single_samples(
    model_path: str | os.PathLike,
    records: Sequence[Any],
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> list:
    """One environment per record, drawn from its spectrum with the target's atom count (ancestral sampler,
    ``n_steps`` of T; None: all), cached (:func:`s2s.model.cache.generate_cached`)."""
    spectra, n_atoms = generation_inputs(records)
    generated = generate_cached(
        model_path, spectra, n_atoms, n_samples=1, n_steps=n_steps, seed=seed, cache_dir=cache_dir, progress=False
    )
    return [g[0] for g in generated]


#: Subsets of the test sites scored on their own (``subsets`` of every table): name -> predicate on the formula.
SUBSETS = {"SiO2": lambda formula: formula == "SiO2"}


def _scored(
    targets: Sequence[Any],
    envs: Sequence[Any],
    groups: Sequence[str],
    digits: int,
    formulas: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Summary table, ``first_shell``, ``ci95`` over ``groups`` and ``n_structures`` of one environment per target;
    with ``formulas`` (one per target) also ``subsets``: the same for the targets of each :data:`SUBSETS` entry
    that has any (paper alignment throughout)."""
    rows = evaluate_generation(list(targets), [[e] for e in envs], methods=("paper",))
    out = summary_table(rows, "paper", digits=digits)
    out["first_shell"] = first_shell_table(rows, "paper", digits=digits)
    out["ci95"] = summary_intervals(rows, list(groups), "paper", digits=digits)
    out["n_structures"] = len(set(groups))
    if formulas is not None:
        out["subsets"] = {}
        for name, keep in SUBSETS.items():
            idx = [i for i, f in enumerate(formulas) if keep(f)]
            if idx:
                sub_rows, sub_groups = [rows[i] for i in idx], [groups[i] for i in idx]
                out["subsets"][name] = {
                    **summary_table(sub_rows, "paper", digits=digits),
                    "ci95": summary_intervals(sub_rows, list(groups), "paper", digits=digits),  # rows index all targets
                    "n_structures": len(set(sub_groups)),
                }
    return out


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
    envs = single_samples(model_path, records, n_steps, seed, cache_dir)
    groups, formulas = [r.structure_id for r in records], [r.formula for r in records]
    return _scored([r.environment for r in records], envs, groups, digits, formulas)


def mapped_input_table(
    model_path: str | os.PathLike,
    records: Sequence[Any],
    input_map,
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    digits: int = 4,
) -> dict[str, Any]:
    """:func:`single_sample_table` of ``records`` whose spectra first go through ``input_map`` (a
    :class:`s2s.forward.fidelity_map.FidelityMap`), with what the map is (``input_map``: source, target,
    alpha, pairs and structures it was fitted on, the domain threshold) and the share of the raw spectra
    inside its domain (``in_domain``)."""
    from s2s.forward.fidelity_map import with_mapped_spectra

    mapped = with_mapped_spectra(list(records), input_map)
    out = single_sample_table(model_path, mapped, n_steps=n_steps, seed=seed, cache_dir=cache_dir, digits=digits)
    keys = ("n_pairs", "n_structures", "trained_on", "calc_key")
    out["input_map"] = {
        "source": input_map.source,
        "target": input_map.target,
        "alpha": input_map.alpha,
        "domain_threshold": round(float(input_map.domain_threshold), 6),
        **{k: input_map.meta[k] for k in keys if k in input_map.meta},
    }
    raw = np.stack([np.asarray(r.spectrum, np.float64) for r in records])
    out["in_domain"] = round(float(np.mean(input_map.in_domain(raw))), digits)
    return out


def template_comparison(
    records: Sequence[Any], generated: Sequence[Any], library: Sequence[Any], digits: int = 4
) -> dict[str, Any]:
    """Template matching of each record's spectrum in ``library`` (same-structure entries excluded), the
    matched environments scored like samples (summary table, ``first_shell``, ``ci95`` over
    ``.structure_id``), and ``model_win_rate``: the share of records whose ``generated[i]`` (one
    environment each) is more SOAP-similar to the target than its template
    (:func:`s2s.retrieval.template.compare_with_generation`), with ``model_win_rate_ci95``."""
    targets, groups = [r.environment for r in records], [r.structure_id for r in records]
    tm = template_match(
        np.stack([np.asarray(r.spectrum, np.float64) for r in records]),
        groups,
        np.stack([np.asarray(r.spectrum, np.float64) for r in library]),
        [r.structure_id for r in library],
        [r.environment for r in library],
    )
    cmp = compare_with_generation(targets, list(generated), tm.environments, tm.mse)
    out = _scored(targets, tm.environments, groups, digits, [r.formula for r in records])
    out["library_size"] = len(library)
    out["model_win_rate"] = round(float(cmp["model_win_rate"]), digits)
    out["model_win_rate_ci95"] = [round(float(v), digits) for v in interval(resampled_means(cmp["win"], groups)[:, 0])]
    out["n_wins"], out["n_ties"] = int(cmp["n_wins"]), int(cmp["n_ties"])
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
    input_map=None,
    xtb_model_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The study of the module docstring on the sites of ``reference_records`` that also have an xTB record.

    ``input_map``: a :class:`s2s.forward.fidelity_map.FidelityMap` (reference -> xTB); adds ``mapped_input``,
    read by ``xtb_model_path`` (the map's target is the xTB-trained generator's input), else by ``model_path``.
    ``xtb_model_path`` other than ``model_path`` also adds ``xtb_model_input``: the reference spectra read by
    the xTB-trained generator as they are (the old model's row beside the new one's).

    ``forward``: the forward model (:class:`s2s.forward.model.ForwardModel`) that best-of-k needs for its
    other picks (of the input's fidelity: ``forward_ref_v1`` for reference spectra); ``library_records``: the
    template library (reference fidelity).  Returns ``single`` (also the top-level keys, as ``test_generation``),
    ``xtb_input``, ``composition_medoid_of_k``, ``forward_pick_of_k``, ``oracle_of_k``, ``template``,
    ``n_test``, ``n_structures``, ``sites``, ``ci95_method`` and the settings."""
    ref, xtb = paired_by_site(reference_records, xtb_records)
    if not library_records:
        raise ValueError("evaluate_reference_input: empty template library")
    envs = single_samples(model_path, ref, n_steps, seed, cache_dir)
    single = _scored(
        [r.environment for r in ref], envs, [r.structure_id for r in ref], digits, [r.formula for r in ref]
    )
    paired = single_sample_table(model_path, xtb, n_steps=n_steps, seed=seed, cache_dir=cache_dir, digits=digits)
    bok = evaluate_best_of_k(
        model_path, forward, ref, list(library_records), consensus, cache_dir=cache_dir, digits=digits, intervals=True
    )
    n_structures = single["n_structures"]
    reader_of_map = model_path if xtb_model_path is None else xtb_model_path
    return {
        **single,
        "xtb_input": paired,
        "composition_medoid_of_k": {
            **bok["composition_medoid_of_k"],
            "k": consensus.k,
            "sampler": consensus.sampler,
            "n_steps": consensus.n_steps,
        },
        "forward_pick_of_k": {**bok["best_of_k"], "k": consensus.k},
        "oracle_of_k": {**bok["oracle_of_k"], "k": consensus.k},
        "template": template_comparison(ref, envs, library_records, digits),
        **(
            {}
            if input_map is None
            else {
                "mapped_input": {
                    **mapped_input_table(reader_of_map, ref, input_map, n_steps, seed, cache_dir, digits),
                    "model": Path(reader_of_map).parent.name,
                }
            }
        ),
        **(
            {}
            if xtb_model_path is None or Path(xtb_model_path) == Path(model_path)
            else {
                "xtb_model_input": {
                    **single_sample_table(
                        xtb_model_path, ref, n_steps=n_steps, seed=seed, cache_dir=cache_dir, digits=digits
                    ),
                    "model": Path(xtb_model_path).parent.name,
                }
            }
        ),
        "model": Path(model_path).parent.name,
        "sites": [f"{r.structure_id}:{r.site_index}" for r in ref],
        "ci95_method": describe(DEFAULT_BOOTSTRAP, n_structures),
        "n_steps": n_steps,
        "seed": seed,
    }


__all__ = [
    "SUBSETS",
    "SMALL_TEST_SITES",
    "SMALL_LIBRARY_SITES",
    "reference_test_inputs",
    "paired_by_site",
    "single_samples",
    "single_sample_table",
    "template_comparison",
    "mapped_input_table",
    "evaluate_reference_input",
]
