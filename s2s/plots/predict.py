"""The overview figure of one ``s2s predict`` output (``overview.png``): the input spectrum with its
nearest training spectra, the consensus and the best-ranked candidates in 3-D, the forward-model
spectra of the top-ranked candidates, and the ensemble's coordination numbers, distances (Å), angles
(degrees) and shell-composition clusters.  Written by :func:`s2s.predict.report.write_prediction`.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from s2s.ensembles.describe import geometry, shells
from s2s.geometry.shells import coordination_numbers
from s2s.plots.environments import plot_environment
from s2s.plots.style import style
from s2s.spectrum import GRID

#: Predicted spectra of this many top-ranked candidates are drawn in the overview.
N_OVERLAY = 3


def plot_prediction_overview(pred, train_spectra: np.ndarray) -> Figure:
    """A 2x4 PNG overview: spectrum with its nearest training spectra, the top candidate in 3-D,
    the input spectrum with the forward-model spectra of the top-ranked candidates (legend: MSE),
    CN per shell, Si-O distances, angles, cluster frequencies, the best-ranked candidate in 3-D.

    ``pred``: a :class:`s2s.predict.context.Prediction` (``name``, ``spectrum`` (200,), ``candidates``,
    ``summary``, ``predicted``); ``train_spectra``: the (R, 200) training spectra its summary's
    ``nearest_training`` indexes (``s2s predict``'s context)."""
    matplotlib.use("Agg", force=False)
    s = pred.summary
    with style():
        fig = plt.figure(figsize=(18.0, 8.0))
        ax = fig.add_subplot(2, 4, 1)
        ax.plot(GRID, pred.spectrum, color="k", lw=1.6, label="input (aligned)")
        for j, nt in enumerate(s["nearest_training"]):
            ax.plot(
                GRID,
                train_spectra[nt["train_index"]],
                lw=0.9,
                ls="--",
                label=f"{nt['structure_id']} site {nt['site_index']} ({nt['signature']})",
            )
        o = s["ood"]
        among = f" ({o['nearest_fidelity']} library)" if "nearest_fidelity" in o else ""
        ax.set_title(f"OOD percentile {o['percentile']:.0f}{among}" + ("  [FLAGGED]" if o["flag"] else ""), fontsize=9)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        top = s["candidates"]["clusters"][0]
        ax3 = fig.add_subplot(2, 4, 2, projection="3d")
        plot_environment(
            pred.candidates[0],
            ax=ax3,
            title=f"consensus candidate (medoid): {s['candidates']['signatures'][0]}\n"
            f"most frequent: {top['label']} ({top['frequency']:.0%})",
        )
        ax = fig.add_subplot(2, 4, 3)
        rk = s.get("ranking")
        ax.plot(GRID, pred.spectrum, color="k", lw=1.8, label="input (aligned)")
        if rk and pred.predicted is not None:
            for j in range(min(N_OVERLAY, len(pred.candidates))):
                c = rk["candidates"][j]
                ax.plot(
                    GRID, pred.predicted[j], lw=1.0, label=f"#{j + 1} {c['signature']}: MSE {c['spectrum_mse']:.2e}"
                )
            worst = rk["candidates"][-1]
            ax.set_title(
                f"self-consistency: forward model of the top {min(N_OVERLAY, len(pred.candidates))} "
                f"(worst #{len(rk['candidates'])}: {worst['spectrum_mse']:.2e})",
                fontsize=8,
            )
        else:
            ax.set_title("self-consistency: no forward model (ranking off)", fontsize=8)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        ax = fig.add_subplot(2, 4, 4)
        cns = np.array([coordination_numbers(shells(e)) for e in pred.candidates])
        width = 0.27
        allv = np.unique(cns)
        for k in range(cns.shape[1]):
            cnt = np.array([np.sum(cns[:, k] == v) for v in allv]) / len(cns)
            ax.bar(np.arange(len(allv)) + (k - 1) * width, cnt, width, label=f"shell {k + 1}")
        ax.set_xticks(np.arange(len(allv)), [str(v) for v in allv])
        ax.set_xlabel("coordination number")
        ax.set_ylabel("share of candidates")
        ax.legend(fontsize=7)
        geo = [geometry(e) for e in pred.candidates]
        ax = fig.add_subplot(2, 4, 5)
        for key, lab in (("d_sio", "all Si-O bonds"), ("d_sio_first", "Si-O* (first shell)")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(1.3, 2.0, 36), alpha=0.6, label=f"{lab}: {v.mean():.3f}±{v.std():.3f} Å")
        ax.set_xlabel("distance (Å)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no Si-O bonds (<= 2.0 Å)", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 6)
        for key, lab in (("a_osio", "O-Si-O"), ("a_siosi", "Si-O-Si")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(60, 180, 41), alpha=0.6, label=f"{lab}: {v.mean():.1f}±{v.std():.1f}°")
        ax.set_xlabel("angle (degrees)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no bond angles", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 7)
        cl = s["candidates"]["clusters"][:8]
        ax.barh(np.arange(len(cl))[::-1], [c["frequency"] for c in cl], color="0.5")
        ax.set_yticks(
            np.arange(len(cl))[::-1],
            [
                c["label"] + (f"  (best MSE {c['spectrum_mse_best']:.1e})" if "spectrum_mse_best" in c else "")
                for c in cl
            ],
            fontsize=7,
        )
        ax.set_xlabel("frequency (shell composition 1|2|3)")
        ax3 = fig.add_subplot(2, 4, 8, projection="3d")
        if rk:
            best = min(range(len(rk["candidates"])), key=lambda i: rk["candidates"][i].get("forward_rank", i))
            plot_environment(
                pred.candidates[best],
                ax=ax3,
                title=f"best forward-model rank: {rk['candidates'][best]['signature']}\n"
                f"MSE {rk['candidates'][best]['spectrum_mse']:.2e}",
            )
        else:
            ax3.set_axis_off()
        fig.suptitle(
            f"{pred.name}: {s['candidates']['n_samples']} candidates, {s['sampling']['sampler']} "
            f"{s['sampling']['steps']} steps",
            fontsize=10,
        )
        fig.tight_layout()
    return fig


__all__ = ["N_OVERLAY", "plot_prediction_overview"]
