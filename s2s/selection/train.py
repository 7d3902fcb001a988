"""Training, cross-validation and calibration of the confidence model on a labelled table
(:mod:`s2s.selection.data`).

* :func:`table_inputs` - the (M, K, F) inputs of a table (:func:`s2s.selection.features.group_features`);
* :func:`group_folds` - fold of every site, whole structures per fold (seeded);
* :func:`cross_validate` - out-of-fold scores of one :class:`~s2s.selection.model.SelectorConfig`;
* :func:`pick_table` - mean 1st-shell RMSD, species accuracy and validity of a pick per site;
* :func:`expected_calibration_error` and :func:`reliability` - the calibration's quality.
"""

from __future__ import annotations

import numpy as np

from s2s.ensembles.pick import composition_medoid_index
from s2s.forward.selfconsistent import score_candidates
from s2s.selection.data import table_samples
from s2s.selection.features import feature_names, group_features, relative_feature_names
from s2s.selection.model import Selector, SelectorConfig, utility


def table_inputs(table: dict[str, np.ndarray], forward=None) -> np.ndarray:
    """(M, K, F) confidence-model inputs of every site of a table (:func:`s2s.selection.features.group_features`;
    each model's feature set picks its columns).  The forward columns come from ``table["forward_mse"]``,
    else from ``forward`` (a :class:`s2s.forward.model.ForwardModel`, scored here and stored in the table),
    else stay NaN."""
    samples = table_samples(table)
    if "forward_mse" not in table and forward is not None:
        table["forward_mse"] = forward_scores(table, forward, samples)
    fwd = table.get("forward_mse")
    return np.stack(
        [
            group_features(row, table["distances"][i], table["spectrum"][i], None if fwd is None else fwd[i])
            for i, row in enumerate(samples)
        ]
    )


def cached_forward_scores(table_path, table: dict[str, np.ndarray], forward) -> np.ndarray:
    """:func:`forward_scores` of the table at ``table_path``, kept beside it (``<table>.forward.npz``, by site)
    so that each site is scored once, also when the table grows; also set as ``table["forward_mse"]``."""
    from pathlib import Path

    side = Path(str(table_path) + ".forward.npz")
    known: dict[int, np.ndarray] = {}
    if side.exists():
        with np.load(side) as z:
            if z["forward_mse"].shape[1:] == table["rmsd_shell1"].shape[1:]:
                known = {int(s): row for s, row in zip(z["site"], z["forward_mse"])}
    todo = [i for i, s in enumerate(table["site"]) if int(s) not in known]
    if todo:
        samples = table_samples(table)
        part = {k: np.asarray(table[k])[todo] for k in ("spectrum",)}
        new = forward_scores(part, forward, [samples[i] for i in todo])
        known.update({int(table["site"][i]): row for i, row in zip(todo, new)})
        sites = np.array(sorted(known))
        np.savez(side, site=sites, forward_mse=np.stack([known[int(s)] for s in sites]))
    table["forward_mse"] = np.stack([known[int(s)] for s in table["site"]])
    return table["forward_mse"]


def forward_scores(table: dict[str, np.ndarray], forward, samples=None) -> np.ndarray:
    """(M, K) the forward model's MSE of every sample's spectrum to its site's input spectrum
    (:func:`s2s.forward.selfconsistent.score_candidates`; NaN = unscorable)."""
    samples = samples if samples is not None else table_samples(table)  # spectra: table["spectrum"]
    return np.stack(
        [
            score_candidates(
                forward, table["spectrum"][i].astype(np.float64), row, [str(j) for j in range(len(row))]
            ).scores
            for i, row in enumerate(samples)
        ]
    )


def table_errors(table: dict[str, np.ndarray], config: SelectorConfig) -> np.ndarray:
    """(M, K) the errors of a table's samples that the model learns (:func:`utility`)."""
    return utility(table["rmsd_shell1"], table["species_match"], table["valid"], config.clip, config.penalty)


def group_folds(structure_ids, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """(M,) fold index 0..n_folds-1 of every site; all sites of one structure share a fold, and the
    structures are dealt to the folds in a seeded random order, largest first (balanced sizes)."""
    ids = np.asarray([str(s) for s in structure_ids])
    uniq, counts = np.unique(ids, return_counts=True)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(uniq.size), -counts))
    load = np.zeros(n_folds)
    fold_of = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[uniq[i]] = f
        load[f] += counts[i]
    return np.array([fold_of[s] for s in ids], dtype=np.int64)


def cross_validate(x: np.ndarray, err: np.ndarray, folds: np.ndarray, config: SelectorConfig) -> np.ndarray:
    """(M, K) out-of-fold scores: each fold scored by a model trained on the other folds."""
    out = np.full(err.shape, np.nan)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        out[te] = Selector.train(x[tr], err[tr], config).scores(x[te])
    return out


def pick(scores: np.ndarray) -> np.ndarray:
    """(M,) index of the best-scored sample per site (ties: the lower index)."""
    return np.argmax(np.asarray(scores), axis=1)


def pick_in_commonest_composition(scores: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """(M,) index of the best-scored sample per site among the samples of the commonest composition (the
    ``comp_majority`` column of the (M, K, F) inputs): the composition medoid's composition, the learned
    score choosing the sample within it."""
    col = len(feature_names()) + relative_feature_names().index("comp_majority")
    masked = np.where(np.asarray(inputs)[..., col] > 0.5, np.asarray(scores, dtype=float), -np.inf)
    return np.argmax(masked, axis=1)


def picked(table: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    """Per-site labels (M,) of the picked samples ``idx`` (M,)."""
    rows = np.arange(len(idx))
    return {
        k: np.asarray(table[k])[rows, np.asarray(idx)] for k in ("rmsd_shell1", "rmsd_all", "species_match", "valid")
    }


def pick_table(table: dict[str, np.ndarray], idx) -> dict[str, float]:
    """Mean paper-aligned 1st-shell and all-atom RMSD (NaN-skipping, Å), species accuracy and validity of a pick."""
    p = picked(table, idx)
    return {
        "rmsd_shell1": float(np.nanmean(p["rmsd_shell1"])),
        "rmsd_all": float(np.nanmean(p["rmsd_all"])),
        "species_accuracy": float(np.mean(p["species_match"])),
        "validity": float(np.mean(p["valid"])),
    }


def oracle_index(table: dict[str, np.ndarray]) -> np.ndarray:
    """The oracle of K: smallest true 1st-shell RMSD (ties and NaN by overall RMSD, then index), as
    :func:`s2s.studies.best_of_k.select`."""
    r1 = np.where(np.isfinite(table["rmsd_shell1"]), table["rmsd_shell1"], np.inf)
    ra = np.where(np.isfinite(table["rmsd_all"]), table["rmsd_all"], np.inf)
    k = r1.shape[1]
    return np.array([int(np.lexsort((np.arange(k), ra[i], r1[i]))[0]) for i in range(len(r1))])


def composition_medoid(table: dict[str, np.ndarray]) -> np.ndarray:
    """(M,) the composition medoid per site (:func:`s2s.ensembles.pick.composition_medoid_index`)
    under the table's paper-aligned distances."""
    return np.array(
        [composition_medoid_index(row, table["distances"][i]) for i, row in enumerate(table_samples(table))]
    )


def reliability(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins of predicted probability: ``count``, ``mean_prob`` and ``frequency`` (observed) per bin."""
    p = np.asarray(prob, dtype=np.float64).ravel()
    o = np.asarray(outcome, dtype=np.float64).ravel()
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / count
        freq = np.bincount(b, weights=o, minlength=n_bins) / count
    return {"count": count, "mean_prob": mean_p, "frequency": freq, "edges": np.linspace(0, 1, n_bins + 1)}


def expected_calibration_error(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> float:
    """ECE: sum over equal-width bins of (bin share) x |mean predicted - observed frequency|."""
    r = reliability(prob, outcome, n_bins)
    n = r["count"].sum()
    ok = r["count"] > 0
    return float(np.sum(r["count"][ok] / n * np.abs(r["mean_prob"][ok] - r["frequency"][ok])))


__all__ = [
    "table_inputs",
    "forward_scores",
    "cached_forward_scores",
    "table_errors",
    "group_folds",
    "cross_validate",
    "pick",
    "pick_in_commonest_composition",
    "picked",
    "pick_table",
    "oracle_index",
    "composition_medoid",
    "reliability",
    "expected_calibration_error",
]
