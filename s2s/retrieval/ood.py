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


__all__ = ["DEFAULT_K", "DEFAULT_THRESHOLD", "OODScorer", "knn_distance"]
