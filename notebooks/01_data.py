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
# # 01 — The open Si–O dataset
#
# Structures → unique O sites → 3-shell environments (2.0 Å cutoff) paired with O K-edge spectra
# from the open GFN1-xTB simulator (`s2s.simulate.xtb`), on the paper's grid (200 points,
# −1…18.9 eV, unit area). By default this notebook loads the shipped dataset
# (`data/s2s_open_v1.h5`, built by `scripts/build_dataset.py`) and also re-runs the whole
# pipeline live on a few small crystals, to show that the shipped file is what the code makes.

# %% tags=["parameters"]
from s2s.resources import default_path  # the shipped model and dataset (S2S_MODEL, S2S_DATA, S2S_HOME)

small = False  # CI: fewer structures in the live rebuild
figures_dir = "../figures"  # figures and results.json (scripts/run_notebooks.py --small: runs/ci/figures)
dataset_path = str(default_path("data"))
n_live = 4  # structures simulated live (smallest cells first)

# %%
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from s2s.dataset import Dataset
from s2s.environment import first_shell_label
from s2s.plots import plot_composition_histogram, plot_spectra, save_figure
from s2s.simulate.assemble import assemble, xtb_cache_source
from s2s.simulate.build import build
from s2s.simulate.xtb import XtbSettings
from s2s.spectrum import GRID
from s2s.structures import load_records

warnings.filterwarnings("ignore", category=DeprecationWarning)
FIG = Path(figures_dir)
if small:
    n_live = 2

# %% [markdown]
# ## The shipped dataset

# %%
# NBVAL_CHECK_OUTPUT
ds = Dataset.load(dataset_path)
ids = sorted({r.structure_id for r in ds})
print(
    f"{len(ds)} sites from {len(ids)} structures; train {len(ds.train)}, test {len(ds.test)} "
    f"(split grouped by structure, seed {ds.meta.get('split_seed')})"
)
print("sources:", dict(Counter(r.source for r in ds)))
print("simulator:", ds[0].simulator, ds[0].settings)

# %% [markdown]
# ## Composition (paper, Supplementary Fig. 1)

# %%
x_by_structure = {r.structure_id: r.x for r in ds}
fig = plot_composition_histogram(list(x_by_structure.values()), title=f"{len(ids)} Si–O crystals")
save_figure(fig, FIG / "data_composition_structures")
fig = plot_composition_histogram(
    [r.x for r in ds], ylabel="Number of O sites (spectra)", title=f"{len(ds)} O K-edge spectra"
)
save_figure(fig, FIG / "data_composition_sites")
n_sio2 = sum(abs(r.x - 2.0) < 1e-6 for r in ds)
print(f"SiO2 sites: {n_sio2} of {len(ds)} ({100 * n_sio2 / len(ds):.0f} %; the paper: 1,842 of 2,067, 89 %)")

# %% [markdown]
# ## Spectra by coordination of the excited O
# Mean spectrum (line) and 10–90 % band of each first-shell class.

# %%
classes = Counter(first_shell_label(r.environment) for r in ds)
print("first-shell classes:", dict(classes.most_common()))
spectra, bands = {}, {}
for label, n in classes.most_common(5):
    s = np.stack([r.spectrum for r in ds if first_shell_label(r.environment) == label])
    key = f"O–{label} (n={n})"
    spectra[key] = s.mean(0)
    bands[key] = (np.percentile(s, 10, axis=0), np.percentile(s, 90, axis=0))
fig = plot_spectra(GRID, spectra, bands=bands, title="Simulated O K-edges by first-shell coordination")
save_figure(fig, FIG / "data_spectra_by_class")

# %% [markdown]
# ## Live rebuild on a few small crystals
# The same code path as `scripts/build_dataset.py`, into a temporary cache, compared with the
# shipped spectra of the same sites.

# %%
recs = sorted(load_records("../data/structures"), key=lambda r: (r.n_atoms, r.id))
shipped_ids = set(ids)
live = [r for r in recs if r.id in shipped_ids][:n_live]
settings = XtbSettings.from_dict(ds[0].settings)
with tempfile.TemporaryDirectory() as tmp:
    report = build([(r.id, r.structure) for r in live], settings, tmp, workers=1, progress=False)
    print(report.summary())
    live_ds, live_rep = assemble(
        live, xtb_cache_source(tmp, settings), simulator=ds[0].simulator, settings=settings.to_dict(), test_fraction=0.5
    )
print(live_rep.summary())

# %%
# NBVAL_CHECK_OUTPUT
shipped = {(r.structure_id, r.site_index): r.spectrum for r in ds}
diffs = [np.abs(r.spectrum - shipped[(r.structure_id, r.site_index)]).max() for r in live_ds]
print(f"max |live - shipped| over {len(diffs)} sites: {max(diffs):.2e} (unit-area spectra)")
assert max(diffs) < 1e-6, "the live rebuild does not reproduce the shipped spectra"

# %% [markdown]
# ## The open simulator against the first-principles reference (GPAW, half core hole)
# Per-site Pearson r and cosine between the xTB spectrum (the dataset's settings) and the GPAW
# spectrum of the same site (`data/reference/`, see `docs/reference.md`). The xTB spectra of
# the reference sites come from the shipped cache (computed if missing, except in CI).

# %%
from s2s.simulate.compare import agreement, load_reference_sites, simulate_reference_sites
from s2s.studies.results import update_results

refs = load_reference_sites("../data/reference")
sim = simulate_reference_sites(refs, settings, "../data/cache/xtb", compute=not small)
rows = agreement(refs, sim)
print(
    f"{len(refs)} reference sites from {len({r.structure_id for r in refs})} structures; "
    f"{len(rows)} with an xTB spectrum"
)
for row in rows:
    print(
        f"  {row['structure_id']:24s} site {row['site_index']:3d}  r = {row['pearson']:.3f}  cos = {row['cosine']:.3f}"
    )
r_mean = float(np.mean([row["pearson"] for row in rows])) if rows else float("nan")
print(f"mean Pearson r = {r_mean:.3f}, mean cosine = {np.mean([row['cosine'] for row in rows]):.3f}")

# %%
import matplotlib.pyplot as plt

show = rows[:: max(1, len(rows) // 6)][:6]
if show:
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True, constrained_layout=True)
    ref_by_key = {(r.structure_id, r.site_index): r for r in refs}
    for ax, row in zip(axes.flat, show):
        key = (row["structure_id"], row["site_index"])
        ax.plot(GRID, ref_by_key[key].spectrum, color="k", label="GPAW (half core hole)")
        ax.plot(GRID, sim[key], color="tab:orange", label="xTB (open simulator)")
        ax.set_title(f"{key[0]} site {key[1]}: r = {row['pearson']:.2f}", fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("Energy relative to edge onset (eV)")
    for ax in axes[:, 0]:
        ax.set_ylabel("Intensity (unit area)")
    axes.flat[0].legend(fontsize=8)
    save_figure(fig, FIG / "data_simulator_vs_gpaw")

# %% [markdown]
# ## Figures of record (`figures/results.json`, key `data`)

# %%
if not small:
    check = {"n_reference_sites": len(rows), "simulator_vs_dft_pearson_mean": round(r_mean, 4)}
    update_results("simulator_check", check, FIG / "results.json")
    print(check)
