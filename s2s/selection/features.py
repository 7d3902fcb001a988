"""Invariant encodings of a candidate environment for the confidence model.

Everything here is a function of interatomic distances and angles, summed, sorted or histogrammed over
atoms, with the excited O (atom 0) as the only distinguished atom - so it is unchanged by any rotation
or reflection about the excited O and by any reordering of the other atoms (tests/test_selection.py).

* :func:`candidate_features` (one environment): composition; the sorted Si and O distances from the
  excited O; Gaussian-smeared radial distribution functions from the excited O per species and over all
  pairs per pair type; shell coordination numbers (:func:`s2s.geometry.shells.assign_shells`); bond
  statistics (Si-O bonds < 2.0 Å: lengths, Si and O coordination, out-of-range bonds, shortest O-O and
  Si-Si distances); Si-O-Si and O-Si-O angle histograms and the excited O's own Si-O-Si angle.
* :func:`relative_features` (K candidates of one spectrum): how a candidate sits among the others - its
  mean, min and median aligned RMSD to them, the share of candidates with its composition, whether it
  is the composition medoid, and its deviation from the others' median in a few key numbers.
* :func:`spectrum_features`: the spectrum averaged into 20 bins of 10 grid points.
* :func:`forward_features`: the forward model's MSE of each candidate's spectrum to the input (log, relative
  to the group, rank) - optional.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import cdist

from s2s.ensembles.pick import composition_key
from s2s.environment import SI, Environment, O
from s2s.geometry.shells import assign_shells

BOND = 2.0  # Å, the environment's bond cutoff
PAD = 6.0  # Å, distance written for an absent neighbour
N_SI_DIST, N_O_DIST = 4, 6
RDF0_CENTRES = np.arange(1.0, 6.01, 0.25)  # Å, RDF from the excited O
RDF0_SIGMA = 0.15
RDFP_CENTRES = np.arange(1.0, 6.01, 0.5)  # Å, all-pair RDF
RDFP_SIGMA = 0.25
SIOSI_CENTRES = np.arange(100.0, 180.1, 10.0)  # degrees
SIOSI_SIGMA = 8.0
OSIO_CENTRES = np.arange(80.0, 140.1, 7.5)
OSIO_SIGMA = 5.0


def _smear(values: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if v.size == 0:
        return np.zeros(centres.size)
    return np.exp(-0.5 * ((v - centres[None, :]) / sigma) ** 2).sum(axis=0)


def _sorted_padded(values: np.ndarray, n: int) -> np.ndarray:
    v = np.sort(np.asarray(values, dtype=np.float64))[:n]
    return np.r_[v, np.full(n - v.size, PAD)]


def _angles(centre: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Angles (degrees) at ``centre`` between all pairs of vectors to ``ends`` (n, 3)."""
    if len(ends) < 2:
        return np.zeros(0)
    v = ends - centre
    v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-9)
    i, j = np.triu_indices(len(v), 1)
    return np.degrees(np.arccos(np.clip(np.sum(v[i] * v[j], axis=1), -1.0, 1.0)))


def feature_names() -> list[str]:
    """Names of :func:`candidate_features`' columns, in order."""
    names = ["n_atoms", "n_o", "n_si", "o_frac"]
    names += [f"d_si_{i}" for i in range(N_SI_DIST)] + [f"d_o_{i}" for i in range(N_O_DIST)]
    names += [f"rdf0_si_{c:.2f}" for c in RDF0_CENTRES] + [f"rdf0_o_{c:.2f}" for c in RDF0_CENTRES]
    for p in ("sisi", "sio", "oo"):
        names += [f"rdf_{p}_{c:.1f}" for c in RDFP_CENTRES]
    names += ["cn1", "cn2", "cn3", "cn_far", "shell1_si", "shell1_o"]
    names += [
        "sio_bond_mean",
        "sio_bond_std",
        "sio_bond_min",
        "sio_bond_max",
        "sio_bad",
        "si_cn_mean",
        "si_cn_min",
        "si_cn_max",
        "o_cn0",
        "o_cn1",
        "o_cn2",
        "o_cn3",
        "min_oo",
        "min_sisi",
        "min_any",
    ]
    names += [f"siosi_{c:.0f}" for c in SIOSI_CENTRES] + [f"osio_{c:.1f}" for c in OSIO_CENTRES]
    names += ["exc_siosi", "exc_has_angle"]
    return names


def candidate_features(env: Environment) -> np.ndarray:
    """(F,) invariant encoding of one environment (module docstring; :func:`feature_names`)."""
    c = np.asarray(env.coords, dtype=np.float64)
    c = c - c[0]
    sp = np.asarray(env.species)
    n = len(sp)
    is_si, is_o = sp == SI, sp == O
    d = cdist(c, c)
    r0 = d[0]
    others = np.arange(n) > 0
    f: list[np.ndarray | list[float]] = [[n, is_o.sum(), is_si.sum(), is_o.sum() / n]]
    f.append(_sorted_padded(r0[others & is_si], N_SI_DIST))
    f.append(_sorted_padded(r0[others & is_o], N_O_DIST))
    f.append(_smear(r0[others & is_si], RDF0_CENTRES, RDF0_SIGMA))
    f.append(_smear(r0[others & is_o], RDF0_CENTRES, RDF0_SIGMA))
    iu = np.triu_indices(n, 1)
    pair_d = d[iu]
    a, b = sp[iu[0]], sp[iu[1]]
    for mask in ((a == SI) & (b == SI), (a != b), (a == O) & (b == O)):
        f.append(_smear(pair_d[mask], RDFP_CENTRES, RDFP_SIGMA) / n)
    shell = assign_shells(c)
    f.append([np.sum(shell == 1), np.sum(shell == 2), np.sum(shell == 3), np.sum(shell > 3)])
    f.append([np.sum((shell == 1) & is_si), np.sum((shell == 1) & is_o)])
    bonded = (d < BOND) & ~np.eye(n, dtype=bool)
    sio = bonded & (is_si[:, None] & is_o[None, :])
    lengths = d[sio]
    si_cn = sio.sum(axis=1)[is_si]
    o_cn = sio.sum(axis=0)[is_o]
    oo = d[np.ix_(is_o, is_o)][np.triu_indices(int(is_o.sum()), 1)]
    sisi = d[np.ix_(is_si, is_si)][np.triu_indices(int(is_si.sum()), 1)]
    f.append(
        [
            lengths.mean() if lengths.size else 0.0,
            lengths.std() if lengths.size else 0.0,
            lengths.min() if lengths.size else BOND,
            lengths.max() if lengths.size else BOND,
            np.sum((lengths < 1.45) | (lengths > 1.85)),
            si_cn.mean() if si_cn.size else 0.0,
            si_cn.min() if si_cn.size else 0.0,
            si_cn.max() if si_cn.size else 0.0,
            *[np.mean(o_cn == j) if o_cn.size else 0.0 for j in (0, 1, 2)],
            np.mean(o_cn >= 3) if o_cn.size else 0.0,
            min(oo.min() if oo.size else PAD, PAD),
            min(sisi.min() if sisi.size else PAD, PAD),
            min(pair_d.min() if pair_d.size else PAD, PAD),
        ]
    )
    siosi, osio = [], []
    for i in np.flatnonzero(is_o):
        nb = np.flatnonzero(sio[:, i])
        if len(nb) >= 2:
            siosi.append(_angles(c[i], c[nb]))
    for i in np.flatnonzero(is_si):
        nb = np.flatnonzero(sio[i])
        if len(nb) >= 2:
            osio.append(_angles(c[i], c[nb]))
    f.append(_smear(np.concatenate(siosi) if siosi else np.zeros(0), SIOSI_CENTRES, SIOSI_SIGMA) / n)
    f.append(_smear(np.concatenate(osio) if osio else np.zeros(0), OSIO_CENTRES, OSIO_SIGMA) / n)
    nb0 = np.flatnonzero(sio[:, 0])
    ang0 = _angles(c[0], c[nb0])
    f.append([ang0.mean() / 180.0 if ang0.size else 0.0, float(ang0.size > 0)])
    return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in f])


#: Columns of :func:`candidate_features` whose deviation from the group's median enters :func:`relative_features`.
KEY_COLUMNS = ("o_frac", "d_si_0", "d_si_1", "d_o_0", "cn1", "cn2", "cn3", "exc_siosi", "sio_bad", "min_any")


def relative_feature_names() -> list[str]:
    names = ["rmsd_mean", "rmsd_min", "rmsd_median", "rmsd_rank", "rmsd_z", "comp_share", "comp_majority"]
    names += ["comp_medoid", "rmsd_mean_same_comp", "group_spread", "group_top_share"]
    names += [f"dev_{c}" for c in KEY_COLUMNS] + ["feature_distance"]
    return names


def relative_features(features: np.ndarray, distances: np.ndarray, comp_keys: Sequence) -> np.ndarray:
    """(K, R) features of each of K candidates relative to the others of the same spectrum.

    ``features`` (K, F) of :func:`candidate_features`, ``distances`` (K, K) their pairwise aligned RMSDs
    (Å; non-finite = 10^3 Å, clipped at 3 Å here), ``comp_keys`` their compositions
    (:func:`s2s.ensembles.pick.composition_key`).  Invariant like the features, and equivariant
    under reordering the K candidates."""
    x = np.asarray(features, dtype=np.float64)
    k = x.shape[0]
    d = np.asarray(distances, dtype=np.float64)
    d = np.where(np.isfinite(d), d, 1e3)
    dc = np.minimum(d, 3.0)
    off = ~np.eye(k, dtype=bool)
    if k > 1:
        others = dc[off].reshape(k, k - 1)
        mean, mn, med = others.mean(1), others.min(1), np.median(others, 1)
    else:
        mean = mn = med = np.zeros(1)
    rank = np.argsort(np.argsort(mean, kind="stable"), kind="stable") / max(k - 1, 1)
    z = (mean - mean.mean()) / (mean.std() + 1e-3)
    keys = list(comp_keys)
    share = np.array([sum(kk == kj for kj in keys) / k for kk in keys])
    same = np.array([[ki == kj for kj in keys] for ki in keys]) & off
    mean_same = np.array([dc[i, same[i]].mean() if same[i].any() else 0.0 for i in range(k)])
    names = feature_names()
    cols = [names.index(c) for c in KEY_COLUMNS]
    dev = x[:, cols] - np.median(x[:, cols], axis=0)
    scale = x.std(axis=0) + 1e-3
    fd = np.sqrt((((x - np.median(x, axis=0)) / scale) ** 2).mean(axis=1))
    spread = float(mean.mean())
    out = np.column_stack(
        [
            mean,
            mn,
            med,
            rank,
            z,
            share,
            (share == share.max()).astype(float),
            np.zeros(k),  # composition medoid, filled below
            mean_same,
            np.full(k, spread),
            np.full(k, share.max()),
            dev,
            fd,
        ]
    )
    out[:, 7] = _composition_medoid_flags(keys, d)
    return out


def _composition_medoid_flags(keys: list, d: np.ndarray) -> np.ndarray:
    """1 for the composition medoid (:func:`s2s.ensembles.pick.composition_medoid_index`'s rule on
    precomputed composition keys), 0 elsewhere."""
    k = len(keys)
    groups: dict = {}
    for i, c in enumerate(keys):
        groups.setdefault(c, []).append(i)
    top = max(len(v) for v in groups.values())
    best = None
    for members in (v for v in groups.values() if len(v) == top):
        sub = d[np.ix_(members, members)]
        m = members[int(np.argmin(sub.mean(axis=1)))] if len(members) > 1 else members[0]
        cand = (float(d[m].sum() / max(k - 1, 1)), m)
        if best is None or cand < best:
            best = cand
    flags = np.zeros(k)
    flags[best[1]] = 1.0
    return flags


def spectrum_features(spectrum: np.ndarray, bins: int = 20) -> np.ndarray:
    """(bins,) the spectrum (unit area on the 200-point grid) averaged over equal bins, times 100."""
    s = np.asarray(spectrum, dtype=np.float64).reshape(-1)
    return s[: bins * (s.size // bins)].reshape(bins, -1).mean(axis=1) * 100.0


#: Columns of :func:`candidate_features` that the compact input keeps beside the relative features.
COMPACT_COLUMNS = ("n_atoms", "o_frac", "d_si_0", "d_si_1", "cn1", "cn2", "exc_siosi", "sio_bad", "min_any")
FEATURE_SETS = ("all", "compact")


N_SPECTRUM = 20  # spectrum_features' bins
N_FORWARD = 3  # forward_features' columns


def input_columns(feature_set: str = "all", spectrum: bool = False, forward: bool = False) -> np.ndarray:
    """Indices into :func:`group_features`' columns of a feature set: ``all`` (every candidate and relative
    column) or ``compact`` (the relative features and :data:`COMPACT_COLUMNS`), plus the spectrum's
    20 bins when ``spectrum`` and the forward model's 3 columns when ``forward``."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"input_columns: feature set must be one of {FEATURE_SETS}, got {feature_set!r}")
    names = feature_names()
    n_f, n_r = len(names), len(relative_feature_names())
    extra = []
    if spectrum:
        extra.append(np.arange(n_f + n_r, n_f + n_r + N_SPECTRUM))
    if forward:
        extra.append(np.arange(n_f + n_r + N_SPECTRUM, n_f + n_r + N_SPECTRUM + N_FORWARD))
    extra = np.concatenate(extra) if extra else np.zeros(0, dtype=int)
    if feature_set == "all":
        return np.r_[np.arange(n_f + n_r), extra].astype(int)
    return np.r_[[names.index(c) for c in COMPACT_COLUMNS], np.arange(n_f, n_f + n_r), extra].astype(int)


def forward_features(mse: np.ndarray | None, k: int) -> np.ndarray:
    """(K, 3) the forward model's view of K candidates: log MSE of its spectrum to the input
    (:func:`s2s.forward.selfconsistent.score_candidates`; unscorable = the worst of the group), that
    minus the group's mean, and its rank / (K - 1).  NaN columns when ``mse`` is None."""
    if mse is None:
        return np.full((k, N_FORWARD), np.nan)
    v = np.asarray(mse, dtype=np.float64).reshape(-1)
    if v.size != k:
        raise ValueError(f"forward_features: {v.size} scores for {k} candidates")
    ok = np.isfinite(v) & (v > 0)
    worst = v[ok].max() if ok.any() else 1.0
    lv = np.log(np.where(ok, v, worst))
    rank = np.argsort(np.argsort(lv, kind="stable"), kind="stable") / max(k - 1, 1)
    return np.column_stack([lv, lv - lv.mean(), rank])


def group_features(
    samples: Sequence[Environment],
    distances: np.ndarray,
    spectrum: np.ndarray,
    forward_mse: np.ndarray | None = None,
) -> np.ndarray:
    """(K, F + R + 20 + 3) the full input of the confidence model for the K candidates of one spectrum:
    :func:`candidate_features`, :func:`relative_features`, :func:`spectrum_features` and
    :func:`forward_features` (NaN without ``forward_mse``); each model reads the columns of its feature
    set (:func:`input_columns`)."""
    x = np.stack([candidate_features(e) for e in samples])
    rel = relative_features(x, distances, [composition_key(e) for e in samples])
    spec = np.repeat(spectrum_features(spectrum)[None, :], len(samples), axis=0)
    return np.concatenate([x, rel, spec, forward_features(forward_mse, len(samples))], axis=1)


__all__ = [
    "candidate_features",
    "feature_names",
    "relative_features",
    "relative_feature_names",
    "spectrum_features",
    "group_features",
    "forward_features",
    "input_columns",
    "KEY_COLUMNS",
    "COMPACT_COLUMNS",
    "FEATURE_SETS",
]
