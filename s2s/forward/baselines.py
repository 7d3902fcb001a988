"""Scores of the forward model (environment -> spectrum) beside two baselines.

Scores: mean cosine similarity and mean MSE (unit-area intensity squared over the 200-point grid)
of predicted to true spectra.  Baselines: the training mean spectrum (the same prediction for every
site) and the spectrum of the nearest training environment by SOAP (Euclidean distance of
L2-normalised SOAP vectors, :func:`s2s.descriptors.soap.soap_vectors`; i.e. the largest SOAP
cosine).  ``benchmarks/forward_model.py`` is the command line.
"""

from __future__ import annotations

import numpy as np

from s2s.descriptors.soap import soap_vectors
from s2s.forward.model import cosine


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def baselines(train_envs: list, train_spectra: np.ndarray, query_envs: list) -> dict[str, np.ndarray]:
    """Predictions (n_query, 200) of the two baselines, from (n_train, 200) training spectra."""
    mean = np.tile(train_spectra.mean(axis=0), (len(query_envs), 1))
    a, b = _unit(soap_vectors(query_envs)), _unit(soap_vectors(train_envs))
    nearest = np.argmax(a @ b.T, axis=1)  # min Euclidean distance of unit vectors = max cosine
    return {"training mean spectrum": mean, "nearest training env. (SOAP)": train_spectra[nearest]}


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean cosine and mean MSE of (n, 200) predictions against (n, 200) true spectra."""
    return {"cosine": float(np.mean(cosine(pred, true))), "mse": float(np.mean(np.mean((pred - true) ** 2, axis=1)))}


def format_table(rows: dict[str, dict[str, float]], title: str) -> list[str]:
    """Markdown table lines (title first): method, mean cosine, mean MSE."""
    lines = [
        title,
        f"| {'method':34s} | {'mean cosine':>11s} | {'mean MSE':>10s} |",
        f"|{'-' * 36}|{'-' * 12}:|{'-' * 11}:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name:34s} | {r['cosine']:11.4f} | {r['mse']:10.3e} |")
    return lines
