"""The spectrum translator (issue 29, recipe b): xTB spectrum + environment -> reference-fidelity spectrum.

A translator is a forward model of the SOAP design whose input also holds the site's xTB spectrum
(:attr:`s2s.forward.model.ForwardConfig.input_spectrum`).  It is trained on the sites that have both spectra
(:func:`translation_pairs`) and relabels every other training site (:func:`translate`), so the diffusion model
can be trained on a reference-like spectrum of every site (Delta-learning between levels of theory in the
sense of Watson et al. 2023: the cheap spectrum carries the site, the network learns the correction).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from s2s.dataset import Dataset
from s2s.forward.model import ForwardModel

#: simulator name of translated records (:data:`s2s.dataset.SIMULATOR_FIDELITY`: fidelity "translated")
TRANSLATED = "translated-xtb-to-reference"


def translation_pairs(dataset: Dataset) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """(environments, xTB spectra (n, 200), reference spectra (n, 200), structure ids) of the sites of
    ``dataset`` that hold both an xTB and a reference record (e.g. :func:`s2s.simulate.reference_sites.with_reference`),
    in the order of the reference records.  Raises ``ValueError`` when no site has both."""
    xtb = {r.key: r for r in dataset if r.fidelity == "xtb"}
    pairs = [(xtb[r.key], r) for r in dataset if r.fidelity == "reference" and r.key in xtb]
    if not pairs:
        raise ValueError("translation_pairs: no site has both an xTB and a reference spectrum")
    envs = [x.environment for x, _ in pairs]
    return (
        envs,
        np.stack([x.spectrum for x, _ in pairs]),
        np.stack([r.spectrum for _, r in pairs]),
        [r.structure_id for _, r in pairs],
    )


def translate(dataset: Dataset, translator: ForwardModel, splits: tuple[str, ...] = ("train",)) -> Dataset:
    """``dataset`` plus a translated record (simulator :data:`TRANSLATED`, the translator's spectrum from the
    site's environment and xTB spectrum, split and everything else as the xTB record) for every xTB site of
    ``splits`` (default: training sites only; test sites are never relabelled for training).

    ``translator``: a translator (``cfg.input_spectrum``), or a forward model of reference spectra (environment
    alone, ``meta["fidelity"] == "reference"``, e.g. ``models/forward_ref_v1``): then each site's label is the
    reference spectrum the forward model predicts for its environment.  ``settings["kind"]`` of the new records
    says which ("translator" or "forward")."""
    reads_spectrum = translator.cfg.input_spectrum
    if not reads_spectrum and translator.meta.get("fidelity") != "reference":
        raise ValueError(
            f"translate: {translator.path or 'the model'} is not a translator (input_spectrum off) nor a forward "
            f"model of reference spectra (its fidelity: {translator.meta.get('fidelity')!r}, expected 'reference')"
        )
    src = [r for r in dataset if r.fidelity == "xtb" and r.split in splits]
    if not src:
        raise ValueError(f"translate: no xTB records in split(s) {splits}")
    names = [f"{r.structure_id} site {r.site_index}" for r in src]
    inputs = np.stack([r.spectrum for r in src]) if reads_spectrum else None
    pred = translator.predict([r.environment for r in src], names, spectra=inputs)
    model = str(translator.path) if translator.path is not None else ""
    kind = "translator" if reads_spectrum else "forward"  # (environment, xTB spectrum) or environment alone
    new = [
        dataclasses.replace(
            r, spectrum=p, simulator=TRANSLATED, settings={"translator": model, "kind": kind}, meta={**r.meta}
        )
        for r, p in zip(src, pred)
    ]
    return Dataset(list(dataset.records) + new, dataset.structures, {**dataset.meta, "translated_sites": len(new)})
