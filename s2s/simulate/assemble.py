"""Assemble the dataset file from structures and cached per-site spectra.

A structure becomes sites (its symmetrically unique O sites), a site an environment
(3 shells, 2.0 Å cutoff) paired with its spectrum; every site that cannot be used is
counted with the reason (not computed yet, simulator failure, empty first shell).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from s2s.dataset import Dataset, SiteRecord
from s2s.environment import EnvironmentExtractionError, environment_from_structure, unique_o_site_groups
from s2s.simulate.build import load_site
from s2s.splits import make_split

#: get_spectrum(structure_id, site_index) -> (spectrum (200,) or None, reason if None)
SpectrumSource = Callable[[str, int], "tuple[np.ndarray | None, str]"]


@dataclass
class AssemblyReport:
    n_structures_in: int = 0
    n_sites_candidate: int = 0
    n_sites: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return (
            f"{self.n_structures_in} structures, {self.n_sites_candidate} unique O sites -> "
            f"{self.n_sites} sites in the dataset" + (f" (skipped {parts})" if parts else "")
        )


def xtb_cache_source(cache_dir, settings) -> SpectrumSource:
    """Spectra from the xTB build cache (``s2s.simulate.build``), broadened with ``settings``."""

    def get(structure_id: str, site: int):
        res = load_site(cache_dir, settings, structure_id, site)
        if res is None:
            return None, "not computed"
        if not res.ok:
            return None, f"simulator: {res.reason.split(':')[0]}"
        return res.spectrum, ""

    return get


def assemble(
    structures: Iterable,
    get_spectrum: SpectrumSource,
    *,
    simulator: str,
    settings: dict,
    test_fraction: float = 0.1,
    seed: int = 0,
    meta: dict | None = None,
    split_method: str = "hash",
) -> tuple[Dataset, AssemblyReport]:
    """Dataset of every usable unique O site of ``structures`` (StructureRecords), split by structure.

    The default ``split_method="hash"`` keeps every structure on its side of the split as the
    structure set grows (see :func:`s2s.splits.make_split`).
    """
    report = AssemblyReport()
    records, structs = [], {}
    for rec in structures:
        report.n_structures_in += 1
        for site, mult in unique_o_site_groups(rec.structure, structure_id=rec.id):
            report.n_sites_candidate += 1
            spec, reason = get_spectrum(rec.id, site)
            if spec is None:
                report.skipped[reason] += 1
                continue
            try:
                env = environment_from_structure(rec.structure, site, structure_id=rec.id)
            except EnvironmentExtractionError as exc:
                report.skipped[type(exc).__name__] += 1
                continue
            records.append(
                SiteRecord(
                    spectrum=spec,
                    environment=env,
                    structure_id=rec.id,
                    site_index=site,
                    multiplicity=mult,
                    formula=rec.formula,
                    x=rec.x,
                    source=rec.source,
                    simulator=simulator,
                    settings=settings,
                    meta={"spacegroup": rec.spacegroup, "name": rec.name},
                )
            )
            structs[rec.id] = rec.structure
    report.n_sites = len(records)
    if len(structs) < 2:
        raise ValueError(f"assemble: need sites from at least 2 structures for a train/test split; {report.summary()}")
    ds = make_split(
        Dataset.from_records(records, structs, meta or {}), test_fraction=test_fraction, seed=seed, method=split_method
    )
    return ds, report


def data_figures(ds: Dataset, report: AssemblyReport) -> dict:
    """The ``data`` block of figures/results.json (counts from the dataset itself).

    ``n_sites_by_formula`` (reduced formula -> sites, most common first) and
    ``sio2_site_fraction`` compare the composition mix with the paper's (1,842 of
    2,067 spectra from SiO2).
    """
    by_formula = Counter(r.formula for r in ds)
    return {
        "n_structures": len({r.structure_id for r in ds}),
        "n_sites": len(ds),
        "n_train": len(ds.train),
        "n_test": len(ds.test),
        "n_sites_candidate": report.n_sites_candidate,
        "skipped": dict(report.skipped),
        "split_seed": ds.meta.get("split_seed"),
        "n_sites_by_formula": dict(by_formula.most_common()),
        "sio2_site_fraction": round(by_formula.get("SiO2", 0) / max(len(ds), 1), 4),
    }
