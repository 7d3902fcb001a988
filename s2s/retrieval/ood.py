"""Out-of-distribution score of a spectrum relative to the training spectra (for ``s2s predict``).

Distance: the RMS difference of two unit-area grid spectra, ``sqrt(mean((a - b)^2))``
(intensity units of 1/eV).  The *k-NN distance* of a spectrum is the mean of these distances to
its ``k`` nearest training spectra (:func:`s2s.retrieval.neighbours.knn_distance`, ``metric="rms"``;
the same module gives the manifold's distances).

Calibration: a leave-one-structure-out (LOSO) reference distribution.  For every training
spectrum its k-NN distance to the training spectra of *other* structures is computed (the
sites of one structure have near-identical spectra, so plain leave-one-out would make every
training point look like a near-duplicate, while a user's spectrum comes from a structure
not in training).  The score of a query is the **percentile** of its k-NN distance in that
reference distribution: ~uniform on 0..100 for spectra like the training ones (held-out
structures), 100 for anything farther than every training spectrum is from the others.
A spectrum is flagged when its percentile exceeds ``threshold`` (default 95, i.e. ~5 %
false alarms on in-distribution spectra); ``ratio`` (= k-NN distance / the reference
distribution's 95th percentile) tells how far beyond the edge a flagged spectrum lies.

Libraries of several spectrum fidelities (``s2s predict --fidelity both``: xTB and first-principles spectra of
the same sites): :class:`PerFidelityOODScorer` calibrates each fidelity's spectra on their own and scores a query
against the fidelity it lies closest to in calibrated terms (the lowest percentile).  Pooled, the many xTB spectra
set a tighter distribution than the sparser first-principles ones, so first-principles input looked farther out
than it is (validation: 14.5 % of GPAW spectra flagged pooled, 10.2 % per fidelity, xTB 4.5 % and 4.9 %, every
bad input as often; docs/fidelity.md, "The OOD score per fidelity").  :func:`fit_ood` builds the right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from s2s.retrieval.neighbours import knn_distance, loso_distance

#: Default number of neighbours and flag threshold (percentile of the LOSO distribution).
DEFAULT_K = 5
DEFAULT_THRESHOLD = 95.0


@dataclass
class OODScorer:
    """k-NN distance of spectra to the training set, as a percentile of the LOSO distribution.

    Build with :meth:`fit`; :meth:`score` returns a dict of arrays.
    """

    reference: np.ndarray  # (R, 200) training spectra
    loso: np.ndarray  # (R,) sorted leave-one-structure-out k-NN distances of the training spectra
    k: int = DEFAULT_K
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def fit(
        cls,
        spectra: ArrayLike,
        groups: ArrayLike | None = None,
        k: int = DEFAULT_K,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> OODScorer:
        """Reference = training ``spectra`` (R, 200); ``groups`` (R,) = structure ids (None: each
        spectrum its own group, i.e. plain leave-one-out)."""
        ref = np.asarray(spectra, dtype=np.float64)
        if ref.ndim != 2:
            raise ValueError(f"OODScorer.fit: spectra must be (n, grid), got shape {ref.shape}")
        g = np.arange(len(ref)) if groups is None else np.asarray(groups)
        n_groups = len(np.unique(g))
        if n_groups <= k:
            raise ValueError(f"OODScorer.fit: need more than k={k} groups (structures), got {n_groups}")
        if not 0.0 < threshold < 100.0:
            raise ValueError(f"OODScorer.fit: threshold must be a percentile in (0, 100), got {threshold}")
        loso = np.sort(loso_distance(ref, g, k))
        return cls(reference=ref, loso=loso, k=k, threshold=float(threshold))

    def percentile(self, distance: ArrayLike) -> np.ndarray:
        """Share (%) of the LOSO reference distances below ``distance`` (ties count half)."""
        d = np.atleast_1d(np.asarray(distance, dtype=np.float64))
        lo = np.searchsorted(self.loso, d, side="left")
        hi = np.searchsorted(self.loso, d, side="right")
        return 100.0 * (lo + hi) / (2.0 * len(self.loso))

    @property
    def edge(self) -> float:
        """The reference distribution's ``threshold`` percentile (a distance, 1/eV)."""
        return float(np.percentile(self.loso, self.threshold))

    def score(self, spectra: ArrayLike) -> dict[str, np.ndarray]:
        """For spectra (M, 200): ``distance`` (k-NN RMS distance, 1/eV), ``percentile`` (0-100),
        ``ratio`` (distance / :attr:`edge`) and ``flag`` (percentile > threshold)."""
        q = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
        d = knn_distance(q, self.reference, self.k)
        p = self.percentile(d)
        return {"distance": d, "percentile": p, "ratio": d / self.edge, "flag": p > self.threshold}

    def describe(self, spectrum: ArrayLike) -> dict:
        """JSON-ready score of one spectrum with a human-readable ``warning`` (None when not flagged)."""
        s = self.score(spectrum)
        d, p, r, f = (float(s["distance"][0]), float(s["percentile"][0]), float(s["ratio"][0]), bool(s["flag"][0]))
        warning = None
        if f:
            warning = (
                f"out of distribution: the spectrum is farther from its {self.k} nearest training spectra "
                f"(RMS distance {d:.4f} /eV) than {p:.1f} % of training spectra are from other training "
                f"structures ({r:.2f} x the {self.threshold:g}th percentile); treat the candidates with caution"
            )
        return {
            "knn_distance": d,
            "percentile": p,
            "ratio_to_edge": r,
            "flag": f,
            "threshold_percentile": self.threshold,
            "k": self.k,
            "n_reference": len(self.reference),
            "warning": warning,
        }


@dataclass
class PerFidelityOODScorer:
    """One :class:`OODScorer` per spectrum fidelity; a query is scored against the fidelity where its
    percentile is lowest (it is out of distribution only if it is so for every fidelity's library).

    The interface is :class:`OODScorer`'s; :meth:`score` adds ``fidelity`` (M,) and :meth:`describe`
    ``nearest_fidelity``: which library the spectrum resembles most.
    """

    parts: dict[str, OODScorer]

    @classmethod
    def fit(
        cls,
        spectra: ArrayLike,
        groups: ArrayLike,
        fidelities: ArrayLike,
        k: int = DEFAULT_K,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> PerFidelityOODScorer:
        """``spectra`` (R, 200), ``groups`` (R,) structure ids, ``fidelities`` (R,) e.g. ``"xtb"`` / ``"reference"``.
        Each fidelity's part uses ``min(k, its structures - 1)`` neighbours (it needs at least 2 structures)."""
        ref = np.asarray(spectra, dtype=np.float64)
        g, f = np.asarray(groups), np.asarray(fidelities)
        if ref.ndim != 2 or not len(ref) == len(g) == len(f):
            raise ValueError(
                f"PerFidelityOODScorer.fit: spectra (n, grid), groups (n,) and fidelities (n,) must agree, got "
                f"{ref.shape}, {g.shape}, {f.shape}"
            )
        parts = {}
        for name in sorted(set(f.tolist())):
            m = f == name
            n_groups = len(np.unique(g[m]))
            if n_groups < 2:
                raise ValueError(
                    f"PerFidelityOODScorer.fit: fidelity {name!r} has {n_groups} structure(s); need at least 2"
                )
            parts[str(name)] = OODScorer.fit(ref[m], g[m], k=min(k, n_groups - 1), threshold=threshold)
        return cls(parts=parts)

    @property
    def k(self) -> int:
        return max(p.k for p in self.parts.values())

    @property
    def threshold(self) -> float:
        return next(iter(self.parts.values())).threshold

    def score(self, spectra: ArrayLike) -> dict[str, np.ndarray]:
        """:meth:`OODScorer.score` of the part with the lowest percentile, per query, plus ``fidelity`` (M,)."""
        names = list(self.parts)
        scores = [self.parts[n].score(spectra) for n in names]
        best = np.argmin(np.stack([s["percentile"] for s in scores]), axis=0)
        rows = np.arange(len(best))
        out = {
            key: np.stack([s[key] for s in scores])[best, rows] for key in ("distance", "percentile", "ratio", "flag")
        }
        out["fidelity"] = np.asarray(names)[best]
        return out

    def describe(self, spectrum: ArrayLike) -> dict:
        """:meth:`OODScorer.describe` of the part the spectrum lies closest to, with ``nearest_fidelity`` and
        ``n_reference`` (all parts)."""
        described = {n: part.describe(spectrum) for n, part in self.parts.items()}
        name = min(described, key=lambda n: described[n]["percentile"])  # ties: the first, as score()
        out = described[name]
        if out["warning"]:
            out["warning"] += f" (closest library: the {name} spectra; every fidelity's library flags it)"
        return {
            **out,
            "nearest_fidelity": name,
            "n_reference": sum(len(p.reference) for p in self.parts.values()),
        }


def fit_ood(
    spectra: ArrayLike,
    groups: ArrayLike,
    fidelities: ArrayLike | None = None,
    k: int = DEFAULT_K,
    threshold: float = DEFAULT_THRESHOLD,
) -> OODScorer | PerFidelityOODScorer:
    """The OOD score ``s2s predict`` uses: :class:`OODScorer` for one fidelity, :class:`PerFidelityOODScorer` when
    ``fidelities`` (R,) holds several.  ``k`` is capped at the structures - 1 (toy libraries)."""
    if fidelities is not None and len(set(np.asarray(fidelities).tolist())) > 1:
        return PerFidelityOODScorer.fit(spectra, groups, fidelities, k=k, threshold=threshold)
    return OODScorer.fit(spectra, groups, k=min(k, len(set(np.asarray(groups).tolist())) - 1), threshold=threshold)


__all__ = ["DEFAULT_K", "DEFAULT_THRESHOLD", "OODScorer", "PerFidelityOODScorer", "fit_ood", "knn_distance"]
