# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 — Where the amorphous spectra lie: UMAP and template matching (paper, Fig. 6)
#
# (a) A UMAP (umap-learn, fixed `random_state`) of the training spectra (crystals) together
# with the amorphous SiO_x spectra, coloured by composition. How far each composition lies
# from the training data is measured twice: in the 2-D embedding (distance to the nearest
# training point, against the spread of the training points themselves) and, independent of
# UMAP, in the 200-point spectra (the k-NN percentile score of `s2s.retrieval.ood`).
#
# (b, c) Template matching (the MSE-nearest training spectrum's environment) against the
# model's generated environment, by SOAP cosine similarity to the target, for amorphous SiO2
# and for the most Si-rich composition present (the paper: SiO0.25).

# %% tags=["parameters"]
from s2s.resources import default_path  # the shipped model and dataset (S2S_MODEL, S2S_DATA, S2S_HOME)

small = False  # CI: subsampled UMAP, a few sites per composition, few sampling steps
figures_dir = "../figures"  # figures and results.json (scripts/run_notebooks.py --small: runs/ci/figures)
dataset_path = str(default_path("data"))
amorphous_path = "../data/amorphous/amorphous.h5"
network_path = "../data/amorphous/network/amorphous.h5"  # the four-fold `network` family (issue 18)
model_path = str(default_path("model_xtb"))  # reads xTB spectra: the xTB-trained generator (--fidelity xtb)
n_steps = None  # reverse-diffusion steps (None: all T of the model, 1000)
n_sites_max = None  # sites per composition, spread over its sites, as 05's n_per_composition (None: all)
cell_ids = None  # amorphous cells used, e.g. [0] for the paper's site counts (None: all cells)
n_umap_max = None  # points per class (training, each composition) in the UMAP (None: all)
n_neighbors = 15  # UMAP
min_dist = 0.1  # UMAP
seed = 0  # UMAP random_state and the generation seed
cache_dir = "../runs/generated"

# %%
import json
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.model.cache import generate_cached, generation_cache_path
from s2s.model.train import load_model
from s2s.plots import plot_similarity_gap, plot_umap, save_figure
from s2s.retrieval.ood import OODScorer
from s2s.retrieval.template import compare_with_generation, template_match
from s2s.studies.evaluate import generation_inputs, subsample_groups
from s2s.studies.manifold import UNKNOWN, composition_labels, distance_to_training, umap_embedding
from s2s.studies.results import round_floats, update_results

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.set_num_threads(1)
FIG = Path(figures_dir)
TRAIN = "training crystals"


def name(c: str) -> str:
    return "x unknown" if c == UNKNOWN else f"SiO{c}"


if small:
    n_steps, n_sites_max, n_umap_max = 50, 2, 150

# %%
# NBVAL_CHECK_OUTPUT
ds = Dataset.load(dataset_path)
train = ds.train
amor = Dataset.load(amorphous_path)
if cell_ids is not None:
    amor = amor[[i for i, r in enumerate(amor) if r.meta.get("cell_id") in set(cell_ids)]]
    if len(amor) == 0:
        raise ValueError(f"{amorphous_path}: no sites of cells {cell_ids}")
comp = np.array(composition_labels(amor), dtype=object)
train_spectra = np.stack([r.spectrum for r in train])
train_groups = np.array([r.structure_id for r in train])
amor_spectra = np.stack([r.spectrum for r in amor])
present = sorted(set(comp) - {UNKNOWN}, key=float)
print(f"training split: {len(train)} spectra of {len(set(train_groups))} structures")
print(
    f"amorphous: {len(amor)} spectra ({'all cells' if cell_ids is None else f'cells {cell_ids}'}); per composition x:",
    {c: int((comp == c).sum()) for c in present} | ({UNKNOWN: int((comp == UNKNOWN).sum())} if UNKNOWN in comp else {}),
)
# the simulator settings (not the simulator's name) decide whether the spectra are comparable
set_train = {tuple(sorted(r.settings.items())) for r in train}
set_amor = {tuple(sorted(r.settings.items())) for r in amor}
same_simulator = set_amor <= set_train
if not same_simulator:
    t_set, a_set = dict(next(iter(set_train))), dict(next(iter(set_amor - set_train)))
    diff = {k: (t_set.get(k), a_set.get(k)) for k in sorted(set(t_set) | set(a_set)) if t_set.get(k) != a_set.get(k)}
    print(
        f"WARNING: amorphous spectra simulated with other settings than the training spectra "
        f"(training vs amorphous: {diff}); distances below then mix structure with method"
    )
missing = sorted(set(f"{x:.2f}" for x in np.arange(0.25, 2.01, 0.25)) - set(present), key=float)
if missing:
    print("compositions of the paper not (yet) in the amorphous set:", ", ".join(missing))

# %% [markdown]
# ## Fig. 6a — UMAP of training and amorphous spectra

# %%
labels_all = np.array([TRAIN] * len(train) + comp.tolist(), dtype=object)
keep = subsample_groups(labels_all.tolist(), n_umap_max)
points = np.vstack([train_spectra, amor_spectra])[keep]
labels = labels_all[keep]
t0 = time.perf_counter()
emb = umap_embedding(points, random_state=seed, n_neighbors=n_neighbors, min_dist=min_dist)
print(
    f"UMAP of {len(points)} spectra ({(labels == TRAIN).sum()} training, {(labels != TRAIN).sum()} amorphous) "
    f"in {time.perf_counter() - t0:.1f} s"
)
fig = plot_umap(emb, labels, title="O K-edge spectra (UMAP): crystals vs amorphous SiO$_x$")
save_figure(fig, FIG / "06_umap")

# %% [markdown]
# Distance of each amorphous point to the nearest training point in the embedding; a point is
# *inside* the training manifold when it is no farther than 95 % of the training points are
# from the nearest training point of another structure. UMAP distances are only roughly
# metric, so the spectral-space score next to it is the firmer number.

# %%
is_train = labels == TRAIN
keep_train = keep[is_train]
rep = distance_to_training(emb[is_train], train_groups[keep_train], emb[~is_train], labels[~is_train].tolist())
scorer = OODScorer.fit(train_spectra, train_groups)
score = scorer.score(amor_spectra)
print(f"UMAP threshold (95 % of training nearest-other-structure distances): {rep.threshold:.3f} (arb. units)")
print("composition | n | UMAP: mean NN distance, inside | spectra: median k-NN percentile, flagged OOD")
spectral = {}
for c in rep.per_label:
    sel = comp == c
    spectral[c] = {
        "median_percentile": float(np.median(score["percentile"][sel])),
        "flagged_fraction": float(np.mean(score["flag"][sel])),
        "n": int(sel.sum()),
    }
    v = rep.per_label[c]
    print(
        f"  {name(c):9s} | {v['n']:4d} | {v['mean_distance']:6.3f}, {100 * v['inside_fraction']:5.1f} % | "
        f"{spectral[c]['median_percentile']:5.1f}, {100 * spectral[c]['flagged_fraction']:5.1f} %"
    )

# %%
# NBVAL_CHECK_OUTPUT
print(
    f"spectral OOD score (k = {scorer.k}, flag above the {scorer.threshold:g}th percentile of the training "
    "leave-one-structure-out distances):"
)
for c, v in spectral.items():
    print(
        f"  {name(c)}: median percentile {v['median_percentile']:.1f}, flagged {100 * v['flagged_fraction']:.1f} % "
        f"of {v['n']}"
    )

# %%
fig, ax = plt.subplots(figsize=(5.4, 3.4), layout="constrained")
known = [c for c in rep.per_label if c != UNKNOWN]  # sites without a composition are left out here
xs = [float(c) for c in known]
ax.plot(
    xs,
    [rep.per_label[c]["inside_fraction"] for c in known],
    "o-",
    color="#7B3294",
    label="inside training manifold (UMAP)",
)
ax.plot(
    xs,
    [1 - spectral[c]["flagged_fraction"] for c in known],
    "s--",
    color="#1B9E77",
    label="not flagged OOD (spectra, k-NN)",
)
ax.set_xlabel("x in SiO$_x$")
ax.set_ylabel("Fraction of amorphous sites")
ax.set_ylim(-0.03, 1.03)
ax.legend(loc="best")
ax.set_title("How close each composition is to the training spectra")
save_figure(fig, FIG / "06_umap_inside_fraction")

# %% [markdown]
# ## Fig. 6b, 6c — template matching vs the model on amorphous SiO2 and the most Si-rich composition
# Template: the environment of the training spectrum with the smallest MSE (all training
# sites are candidates: the amorphous structures share no material with them). Model: one
# generated environment per spectrum with the target's atom count. Both are compared with
# the target by SOAP cosine similarity; the model wins a case when its similarity is higher.

# %%
# NBVAL_CHECK_OUTPUT
sio2 = "2.00" if "2.00" in present else (present[-1] if present else None)
si_rich = present[0] if present else None
cases = [c for c in dict.fromkeys([sio2, si_rich]) if c is not None]
print("compared compositions:", ", ".join(f"SiO{c}" for c in cases) or "none")
if len(cases) == 1:
    print("only one composition present: Fig. 6c (Si-rich) is the same set as 6b and is not drawn separately")

# %%
T = load_model(model_path).cfg.diffusion.T
train_envs = [r.environment for r in train]
gen_args = dict(n_samples=1, n_steps=n_steps, seed=seed, cache_dir=cache_dir)
# The sites notebook 05 generates for (n_sites_max per composition, spread); when its cached run
# exists it is read, else only the compared compositions are generated here.
sel = subsample_groups(comp.tolist(), n_sites_max)
spectra_05, n_atoms_05 = generation_inputs([amor[int(i)] for i in sel])
n_atoms = np.array([r.environment.n_atoms for r in amor])
gen_by_site = {}
if generation_cache_path(model_path, spectra_05, n_atoms_05, **gen_args).exists():
    gen_by_site = dict(
        zip(sel.tolist(), generate_cached(model_path, spectra_05, n_atoms_05, **gen_args, progress=False))
    )
    print(f"generated environments read from notebook 05's cached run ({len(sel)} sites)")
comparison = {}
for c in cases:
    idx = sel[comp[sel] == c]
    targets = [amor[int(i)].environment for i in idx]
    spectra = amor_spectra[idx]
    match = template_match(spectra, None, train_spectra, None, train_envs)
    t0 = time.perf_counter()
    if gen_by_site:
        gen = [gen_by_site[int(i)] for i in idx]
    else:
        gen = generate_cached(model_path, spectra, n_atoms[idx], **gen_args, progress=False)
    dt = time.perf_counter() - t0
    comparison[c] = compare_with_generation(targets, [g[0] for g in gen], match.environments, match.mse)
    r = comparison[c]
    print(
        f"SiO{c}: {r['n_cases']} sites, generation {dt:.1f} s ({n_steps or T} steps; cached runs are read); "
        f"model better in {100 * r['model_win_rate']:.1f} % ({r['n_ties']} ties), gap mean {r['gap_mean']:+.4f}"
    )

# %%
if comparison:
    fig = plt.figure(figsize=(7.2 * len(comparison), 4.0), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(1, len(comparison), wspace=0.04))
    for sub, (c, r), tag in zip(subs, comparison.items(), "bc"):
        plot_similarity_gap(r["mse"], r["gap"], title=f"({tag}) amorphous SiO$_{{{float(c):g}}}$", fig=sub)
    save_figure(fig, FIG / "06_template_vs_model")

# %% [markdown]
# ## The `network` family in the same map (issue 18)
# One embedding of the training spectra, the Tersoff glasses and the four-fold `network` glasses
# (docs/amorphous.md); left the Tersoff family, right the network family, training crystals grey in
# both. Per x: the share inside the training manifold (UMAP) and not flagged by the spectral OOD score.

# %%
# NBVAL_CHECK_OUTPUT
net = Dataset.load(network_path)
net_comp = np.array(composition_labels(net), dtype=object)
net_spectra = np.stack([r.spectrum for r in net])
net_keep = subsample_groups(net_comp.tolist(), n_umap_max)
points2 = np.vstack([points, net_spectra[net_keep]])
family = np.array(["tersoff"] * len(points) + ["network"] * len(net_keep), dtype=object)
labels2 = np.concatenate([labels, net_comp[net_keep]])
emb2 = umap_embedding(points2, random_state=seed, n_neighbors=n_neighbors, min_dist=min_dist)
is_train2 = labels2 == TRAIN
net_rows = family == "network"
rep_net = distance_to_training(
    emb2[is_train2], train_groups[keep[is_train]], emb2[net_rows], labels2[net_rows].tolist()
)
net_score = scorer.score(net_spectra)
net_spectral = {
    c: {
        "median_percentile": float(np.median(net_score["percentile"][net_comp == c])),
        "flagged_fraction": float(np.mean(net_score["flag"][net_comp == c])),
        "n": int((net_comp == c).sum()),
    }
    for c in sorted(set(net_comp) - {UNKNOWN}, key=float)
}
print(f"network: {len(net)} spectra; per composition x:", {c: v["n"] for c, v in net_spectral.items()})
for c, v in net_spectral.items():
    print(f"  {name(c)}: median percentile {v['median_percentile']:.1f}, flagged {100 * v['flagged_fraction']:.1f} %")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4), layout="constrained")
for ax, fam, title in ((axes[0], "tersoff", "Tersoff glasses (paper)"), (axes[1], "network", "network glasses")):
    shown = is_train2 | ((family == fam) & ~is_train2)
    plot_umap(emb2[shown], labels2[shown], ax=ax, title=title)
save_figure(fig, FIG / "06_umap_families")

# %% [markdown]
# ## Results (`figures/results.json`, key `umap`)

# %%
out = {
    "n_train": int(len(train)),
    "n_amorphous": int(len(amor)),
    "cell_ids": "all" if cell_ids is None else [int(c) for c in cell_ids],
    "n_points_umap": int(len(points)),
    "umap": {"n_neighbors": n_neighbors, "min_dist": min_dist, "random_state": seed, "input": "unit-area spectra"},
    "same_simulator_settings": bool(same_simulator),
    "n_sites_by_composition": {c: int((comp == c).sum()) for c in present},
    "umap_threshold": rep.threshold,
    "umap_nn_distance": {
        c: {k: v[k] for k in ("mean_distance", "median_distance", "inside_fraction")} for c, v in rep.per_label.items()
    },
    "compositions_inside_umap": rep.inside_labels(0.5),
    "spectral_ood": spectral,
    "template_vs_model": {
        c: {k: r[k] for k in ("model_win_rate", "n_cases", "n_ties", "gap_mean", "gap_std")}
        for c, r in comparison.items()
    },
    "model_win_rate": {c: r["model_win_rate"] for c, r in comparison.items()},
    "n_steps": int(n_steps or T),
    "network": {
        "n_sites_by_composition": {c: v["n"] for c, v in net_spectral.items()},
        "umap_inside_fraction": {c: v["inside_fraction"] for c, v in rep_net.per_label.items()},
        "spectral_ood": net_spectral,
        "n_points_umap": int(len(points2)),
    },
}
out = round_floats(out, 4)
json.dumps(out)  # JSON-ready (checked in small mode too)
if not small:
    update_results("umap", out, FIG / "results.json")
print({k: out[k] for k in ("n_train", "n_amorphous", "compositions_inside_umap", "model_win_rate")})
