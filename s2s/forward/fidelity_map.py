"""Reading a first-principles spectrum with a generator trained on xTB spectra: a map between fidelities.

The generator (v6) was trained on GFN1-xTB Z+1 spectra; a site's first-principles (GPAW) spectrum differs
from its xTB spectrum by more than two sites' xTB spectra do (docs/fidelity.md), so the generator misreads
it.  A :class:`FidelityMap` moves an input spectrum of one fidelity (``source``, default ``"reference"``)
towards what the other fidelity (``target``, default ``"xtb"``) would give for the same site, from the
spectrum alone: a ridge regression on the grid values, learned from the sites that have both spectra,

    y_hat = (x - x_mean) @ W + y_mean,    W = (Xc^T Xc + alpha I)^-1 Xc^T Yc,

with ``Xc``, ``Yc`` the centred pairs (n, 200); the prediction is clipped at zero and put back to unit area
(:func:`s2s.spectrum.normalize`).  It needs no environment, so it applies to a user's spectrum; ``alpha`` is
chosen by cross-validation over structures (:func:`cross_validate`, :func:`fit_fidelity_map`).  It is the
inverse direction of the translator of :mod:`s2s.forward.translate` (xTB + environment -> reference, used to
relabel training sites).  Spectra: (..., 200) on :data:`s2s.spectrum.GRID` (eV), unit area, eV^-1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from s2s.spectrum import N_GRID, normalize

#: principal components of the source spectra that span the map's domain (:meth:`FidelityMap.domain_error`)
DOMAIN_COMPONENTS = 20
#: quantile of the out-of-fold domain errors of the training spectra used as the domain threshold
DOMAIN_QUANTILE = 0.99

#: ridge penalties tried by :func:`fit_fidelity_map` (spectra of unit area on a 0.1 eV grid: values ~0.05 eV^-1)
ALPHAS = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def rms_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Row-wise RMS distance (eV^-1) between grid spectra ``a`` and ``b`` (..., 200), broadcast."""
    return np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=-1))


def _residual_rms(spectra: ArrayLike, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """RMS (eV^-1) of what is left of ``spectra - mean`` after projecting out the rows of ``basis`` (k, 200)."""
    d = np.asarray(spectra, dtype=np.float64) - mean
    return np.sqrt(np.mean((d - (d @ basis.T) @ basis) ** 2, axis=-1))


@dataclass(frozen=True, eq=False)
class FidelityMap:
    """A linear map of grid spectra from fidelity ``source`` to fidelity ``target`` (module docstring).

    weight: (200, 200); x_mean, y_mean: (200,) (eV^-1); alpha: the ridge penalty it was fitted with;
    meta: provenance (pairs, structures, reference settings, cross-validation table).

    The domain: a linear map sends any input, noise or a flat line included, to something target-like, so an
    OOD score computed after the map no longer sees bad input.  ``basis`` (k, 200), the first k principal
    components of the training source spectra, and ``domain_threshold`` (eV^-1) say whether an input looks
    like those spectra at all (:meth:`domain_error`, :meth:`in_domain`)."""

    weight: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    alpha: float
    source: str = "reference"
    target: str = "xtb"
    meta: dict = field(default_factory=dict)
    basis: np.ndarray | None = None
    domain_threshold: float = float("nan")

    def __post_init__(self) -> None:
        if self.weight.shape != (N_GRID, N_GRID) or self.x_mean.shape != (N_GRID,) or self.y_mean.shape != (N_GRID,):
            raise ValueError(
                f"FidelityMap: expected weight ({N_GRID}, {N_GRID}) and means ({N_GRID},), got "
                f"{self.weight.shape}, {self.x_mean.shape}, {self.y_mean.shape}"
            )

    @classmethod
    def fit(
        cls,
        x: ArrayLike,
        y: ArrayLike,
        alpha: float = 0.1,
        source: str = "reference",
        target: str = "xtb",
        meta: dict | None = None,
    ) -> "FidelityMap":
        """Ridge regression of ``y`` (n, 200), the ``target`` spectra, on ``x`` (n, 200), the ``source`` spectra
        of the same n sites (closed form, float64)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != N_GRID or x.shape != y.shape:
            raise ValueError(
                f"FidelityMap.fit: expected x and y of one shape (n, {N_GRID}), got {x.shape} and {y.shape}"
            )
        if len(x) < 2:
            raise ValueError(f"FidelityMap.fit: need at least 2 pairs, got {len(x)}")
        if not alpha > 0:
            raise ValueError(f"FidelityMap.fit: alpha must be > 0, got {alpha}")
        xm, ym = x.mean(0), y.mean(0)
        xc, yc = x - xm, y - ym
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(N_GRID), xc.T @ yc)
        return cls(w, xm, ym, float(alpha), source, target, dict(meta or {}, n_pairs=len(x)))

    def predict(self, spectra: ArrayLike) -> np.ndarray:
        """The linear prediction (..., 200), before clipping and normalisation."""
        s = np.asarray(spectra, dtype=np.float64)
        if s.shape[-1] != N_GRID:
            raise ValueError(f"FidelityMap: expected spectra of shape (..., {N_GRID}), got {s.shape}")
        return (s - self.x_mean) @ self.weight + self.y_mean

    def __call__(self, spectra: ArrayLike) -> np.ndarray:
        """``spectra`` (..., 200) of fidelity ``source`` as ``target``-like spectra (..., 200): the prediction
        clipped at zero, unit area."""
        return normalize(np.clip(self.predict(spectra), 0.0, None), source=f"FidelityMap {self.source}->{self.target}")

    def domain_error(self, spectra: ArrayLike) -> np.ndarray:
        """RMS distance (eV^-1) of ``spectra`` (..., 200) from the span of the training source spectra (mean +
        ``basis``): small for spectra like those the map was fitted on, large for noise, a flat line, another
        edge or a grossly shifted energy axis.  Raises when the map carries no basis."""
        if self.basis is None:
            raise ValueError("FidelityMap.domain_error: this map carries no domain basis (fit_fidelity_map gives one)")
        return _residual_rms(spectra, self.x_mean, self.basis)

    def in_domain(self, spectra: ArrayLike) -> np.ndarray:
        """``domain_error(spectra) <= domain_threshold`` (bool, (...))."""
        return self.domain_error(spectra) <= self.domain_threshold

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (arrays float64 + JSON header) atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "alpha": self.alpha,
            "source": self.source,
            "target": self.target,
            "meta": self.meta,
            "domain_threshold": self.domain_threshold,
        }
        basis = {} if self.basis is None else {"basis": self.basis}
        buf = io.BytesIO()
        np.savez(
            buf,
            weight=self.weight,
            x_mean=self.x_mean,
            y_mean=self.y_mean,
            header=np.array(json.dumps(header)),
            **basis,
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "FidelityMap":
        """Read a map written by :meth:`save`; a missing or damaged file raises naming it and what is wrong (a
        shipped map is checked against its folder's ``SHA256SUMS``, :func:`s2s.checkpoint_io.verify_sha256`)."""
        from s2s.checkpoint_io import verify_sha256

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: fidelity map not found")
        verify_sha256(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                arrays = {k: np.asarray(z[k], dtype=np.float64) for k in ("weight", "x_mean", "y_mean")}
                basis = np.asarray(z["basis"], dtype=np.float64) if "basis" in z.files else None
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path}: not a fidelity map ({err})") from None
        return cls(
            alpha=float(header["alpha"]),
            source=header["source"],
            target=header["target"],
            meta=dict(header.get("meta", {}), file=str(path)),
            basis=basis,
            domain_threshold=float(header.get("domain_threshold", float("nan"))),
            **arrays,
        )


def structure_folds(groups: Sequence[str], n_folds: int = 5) -> list[np.ndarray]:
    """Test-index arrays of ``n_folds`` folds in which all sites of one structure (``groups``) share a fold;
    structures dealt round-robin in order of decreasing site count (deterministic)."""
    groups = np.asarray(list(groups))
    names, counts = np.unique(groups, return_counts=True)
    n_folds = min(n_folds, len(names))
    if n_folds < 2:
        raise ValueError(f"structure_folds: need at least 2 structures, got {len(names)}")
    order = [names[i] for i in np.lexsort((names, -counts))]
    fold_of = {name: k % n_folds for k, name in enumerate(order)}
    which = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(which == k) for k in range(n_folds)]


def cross_validate(
    x: ArrayLike, y: ArrayLike, groups: Sequence[str], alphas: Sequence[float] = ALPHAS, n_folds: int = 5
) -> dict[float, float]:
    """Median over sites of the out-of-fold RMS distance (eV^-1) between the mapped ``x`` and ``y``, per
    ``alpha``; folds by structure (:func:`structure_folds`), so no structure is both fitted and scored."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    folds = structure_folds(groups, n_folds)
    out = {}
    for a in alphas:
        err = np.empty(len(x))
        for test in folds:
            train = np.setdiff1d(np.arange(len(x)), test)
            err[test] = rms_distance(FidelityMap.fit(x[train], y[train], a).predict(x[test]), y[test])
        out[float(a)] = float(np.median(err))
    return out


def principal_basis(x: np.ndarray, k: int = DOMAIN_COMPONENTS) -> np.ndarray:
    """The first ``k`` principal directions (k, 200) of spectra ``x`` (n, 200) about their mean."""
    x = np.asarray(x, dtype=np.float64)
    return np.linalg.svd(x - x.mean(0), full_matrices=False)[2][: min(k, len(x) - 1)]


def domain_threshold(
    x: ArrayLike, groups: Sequence[str], k: int = DOMAIN_COMPONENTS, quantile: float = DOMAIN_QUANTILE, n_folds: int = 5
) -> float:
    """The ``quantile`` of the out-of-fold domain errors of the spectra ``x`` (n, 200): each fold's spectra
    measured against the mean and basis of the others (folds by structure, :func:`structure_folds`), so the
    threshold is what a spectrum of an unseen structure typically shows (eV^-1)."""
    x = np.asarray(x, dtype=np.float64)
    err = np.empty(len(x))
    for test in structure_folds(groups, n_folds):
        train = np.setdiff1d(np.arange(len(x)), test)
        err[test] = _residual_rms(x[test], x[train].mean(0), principal_basis(x[train], k))
    return float(np.quantile(err, quantile))


def fidelity_pairs(dataset, source: str = "reference", target: str = "xtb") -> tuple[np.ndarray, np.ndarray, list]:
    """(source spectra (n, 200), target spectra (n, 200), site records of the source) of the sites of
    ``dataset`` that hold a record of both fidelities (:attr:`s2s.site_record.SiteRecord.fidelity`).  Raises
    ``ValueError`` naming the fidelities when no site has both."""
    tgt = {r.key: r for r in dataset if r.fidelity == target}
    pairs = [(r, tgt[r.key]) for r in dataset if r.fidelity == source and r.key in tgt]
    if not pairs:
        raise ValueError(f"fidelity_pairs: no site has both a {source!r} and a {target!r} spectrum")
    return np.stack([s.spectrum for s, _ in pairs]), np.stack([t.spectrum for _, t in pairs]), [s for s, _ in pairs]


def fit_fidelity_map(
    dataset,
    source: str = "reference",
    target: str = "xtb",
    alphas: Sequence[float] = ALPHAS,
    n_folds: int = 5,
    meta: dict | None = None,
) -> FidelityMap:
    """The map of the pairs of ``dataset`` (:func:`fidelity_pairs`; give it the training sites only), with the
    ``alpha`` of the lowest cross-validated RMS (:func:`cross_validate`); the table is kept in ``meta``."""
    x, y, recs = fidelity_pairs(dataset, source, target)
    groups = [r.structure_id for r in recs]
    cv = cross_validate(x, y, groups, alphas, n_folds)
    best = min(cv, key=lambda a: (cv[a], a))
    threshold = domain_threshold(x, groups, n_folds=n_folds)
    info = {
        "n_structures": len(set(groups)),
        "cv_rms_by_alpha": {str(a): round(v, 6) for a, v in cv.items()},
        "cv_folds": min(n_folds, len(set(groups))),
        "identity_rms_median": float(np.median(rms_distance(x, y))),
        **(meta or {}),
    }
    fmap = FidelityMap.fit(x, y, best, source, target, info)
    return dataclasses.replace(fmap, basis=principal_basis(x), domain_threshold=threshold)


def with_mapped_spectra(records: Sequence, fmap: FidelityMap) -> list:
    """Copies of site records whose spectrum is ``fmap`` of theirs (``meta['fidelity_map']`` notes the map)."""
    mapped = fmap(np.stack([r.spectrum for r in records]))
    note = f"{fmap.source}->{fmap.target}"
    return [dataclasses.replace(r, spectrum=s, meta={**r.meta, "fidelity_map": note}) for r, s in zip(records, mapped)]


__all__ = [
    "ALPHAS",
    "FidelityMap",
    "rms_distance",
    "structure_folds",
    "principal_basis",
    "domain_threshold",
    "DOMAIN_COMPONENTS",
    "DOMAIN_QUANTILE",
    "cross_validate",
    "fidelity_pairs",
    "fit_fidelity_map",
    "with_mapped_spectra",
]
