"""Train / test and fit / validation splits of a :class:`s2s.dataset.Dataset`, always by structure.

No structure is on both sides of a split.  ``hash`` splits (:func:`hash_unit`: SHA-256 of
``(seed, structure id)`` read as a number in [0, 1)) keep a structure's side fixed as the dataset
grows; ``balanced`` splits match the test fraction in *sites*.  :func:`make_split` and
:func:`validation_split` take a :class:`~s2s.dataset.Dataset` and return new ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from s2s.dataset import Dataset


def hash_unit(seed: int, structure_id: str) -> float:
    """A number in [0, 1) fixed by (seed, structure id): SHA-256, first 8 bytes."""
    digest = hashlib.sha256(f"{int(seed)}:{structure_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_pick(ids: list[str], fraction: float, seed: int) -> set[str]:
    """The ids whose hash unit (:func:`hash_unit`) is below ``fraction``; with two or more ids,
    never none and never all (the lowest is taken, the highest left out)."""
    u = {k: hash_unit(seed, k) for k in ids}
    picked = {k for k in ids if u[k] < fraction}
    if len(ids) >= 2 and not picked:
        picked = {min(ids, key=u.get)}
    if len(ids) >= 2 and len(picked) == len(ids):
        picked.discard(max(ids, key=u.get))
    return picked


def make_split(dataset: Dataset, test_fraction: float = 0.1, seed: int = 0, method: str = "balanced") -> Dataset:
    """Assign ``"train"``/``"test"`` labels grouped by structure (no structure in both).

    ``method="balanced"``: structures are visited in a seeded random order (of their sorted ids,
    so the result does not depend on record order) and a structure joins the test set when that
    brings the number of test *sites* closer to ``test_fraction * len(dataset)``.

    ``method="hash"``: a structure is in the test set when a SHA-256 of ``(seed, structure id)``,
    read as a number in [0, 1), is below ``test_fraction``.  A structure's side then never
    depends on the other structures, so the split is stable as the dataset grows (no structure
    moves between train and test when new ones are added); about ``test_fraction`` of the
    *structures* (not exactly of the sites) end in the test set.

    With two or more structures both parts are non-empty.  Returns a new dataset whose ``meta``
    records ``split_seed``, ``split_test_fraction`` and ``split_method``; the input is not modified.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"make_split: test_fraction must be in (0, 1), got {test_fraction}")
    if method not in ("balanced", "hash"):
        raise ValueError(f"make_split: method must be 'balanced' or 'hash', got {method!r}")
    ids = dataset.structure_ids()
    if method == "hash":
        test = hash_pick(ids, test_fraction, seed)
    else:
        test = _balanced_test_ids(dataset, ids, test_fraction, seed)
    records = [replace(r, split="test" if r.structure_id in test else "train") for r in dataset]
    meta = {
        **dataset.meta,
        "split_seed": int(seed),
        "split_test_fraction": float(test_fraction),
        "split_method": method,
    }
    return type(dataset)(records, dataset.structures, meta)  # a Dataset, without importing it here


def validation_split(dataset: Dataset, fraction: float = 0.1, seed: int = 1) -> tuple[Dataset, Dataset]:
    """Carve a validation set out of the *training* structures: (fit, validation).

    A training structure goes to validation when the SHA-256 of ``(seed, structure id)`` read as a
    number in [0, 1) is below ``fraction`` (as :func:`make_split` with ``method="hash"``, another
    seed), so the carve is stable as the dataset grows and never touches the test split: every
    modelling choice is made on the validation set, the test set is kept for the headline.
    Both parts are non-empty when the training split has two or more structures.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split: fraction must be in (0, 1), got {fraction}")
    train = dataset.train
    ids = train.structure_ids()
    if not ids:
        raise ValueError("validation_split: the dataset has no training sites (split labels 'train')")
    val = hash_pick(ids, fraction, seed)
    return train.filter(lambda r: r.structure_id not in val), train.filter(lambda r: r.structure_id in val)


def fit_halves(dataset: Dataset, seed: int = 2) -> tuple[Dataset, Dataset]:
    """Two halves of the fit split (:func:`validation_split`), by structure: (half 0, half 1).

    For cross-fitting (issue 32): a generator trained on one half samples the other half's sites,
    which it never saw.  A fit structure is in half 0 when the SHA-256 of ``(seed, structure id)``
    read as a number in [0, 1) is below 0.5 (:func:`hash_pick`), so the halves are stable as the
    dataset grows and about equal in *structures* (not exactly in sites).  Validation and test
    structures are in neither half.
    """
    fit = validation_split(dataset)[0]
    half0 = hash_pick(fit.structure_ids(), 0.5, seed)
    return fit.filter(lambda r: r.structure_id in half0), fit.filter(lambda r: r.structure_id not in half0)


def _balanced_test_ids(dataset: Dataset, ids: list[str], test_fraction: float, seed: int) -> set[str]:
    """Test structures of ``method="balanced"``: seeded order, each joins when it brings the test site count closer."""
    counts = {k: 0 for k in ids}
    for r in dataset:
        counts[r.structure_id] += 1
    target = test_fraction * len(dataset)
    order = np.random.default_rng(seed).permutation(len(ids))
    test: set[str] = set()
    n_test = 0
    for i in order:
        c = counts[ids[i]]
        if abs(n_test + c - target) < abs(n_test - target):
            test.add(ids[i])
            n_test += c
    if not test and len(ids) >= 2:  # every structure too large: take the smallest
        smallest = min((ids[i] for i in order), key=lambda k: counts[k])
        test.add(smallest)
    if len(test) == len(ids) and len(ids) >= 2:  # cannot happen for fraction < 1, kept as a guard
        test.discard(ids[order[-1]])
    return test
