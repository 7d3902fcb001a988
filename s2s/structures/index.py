"""The catalogue of the structure set (data/structures/): ``index.csv``, counts and generation statistics."""

from __future__ import annotations

import collections
import csv
import io
import json
from pathlib import Path

import numpy as np

from s2s.files import atomic_write_text
from s2s.structures.records import load_records, unique_o_sites

INDEX_FIELDS = [
    "id",
    "source",
    "name",
    "formula",
    "x",
    "n_atoms",
    "spacegroup",
    "spacegroup_number",
    "n_unique_o",
    "relaxation",
    "energy_per_atom",
    "filter_pass",
    "citation",
]


def write_index(folder: Path) -> list[dict]:
    """index.csv with one row per record; returns the rows."""
    rows = []
    for r in load_records(folder):
        rows.append(
            {
                "id": r.id,
                "source": r.source,
                "name": r.name,
                "formula": r.formula,
                "x": f"{r.x:.4f}",
                "n_atoms": r.n_atoms,
                "spacegroup": r.spacegroup,
                "spacegroup_number": r.spacegroup_number,
                "n_unique_o": unique_o_sites(r.structure),
                "relaxation": r.relaxation.method,
                "energy_per_atom": ""
                if r.relaxation.energy_per_atom is None
                else f"{r.relaxation.energy_per_atom:.5f}",
                "filter_pass": int(not r.notes.get("filter")),
                "citation": r.citation,
            }
        )
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(folder / "index.csv", buf.getvalue())
    return rows


def summary(rows: list[dict]) -> str:
    """Counts of index rows: structures, unique O sites, by source, histogram of x = O/Si."""
    n_o = sum(int(r["n_unique_o"]) for r in rows)
    by_src = collections.Counter(r["source"] for r in rows)
    hist = collections.Counter()
    for r in rows:
        x = float(r["x"])
        b = (
            "<1"
            if x < 1
            else "1-1.5"
            if x < 1.5
            else "1.5-<2"
            if x < 1.999
            else "2"
            if x < 2.001
            else "2-3"
            if x < 3
            else ">=3"
        )
        hist[b] += 1
    return (
        f"structures: {len(rows)}  unique O sites: {n_o}\n"
        f"by source: {dict(by_src)}\n"
        f"x = O/Si histogram: {dict(sorted(hist.items()))}"
    )


def generation_stats(folder: Path) -> list[str]:
    """Lines: attempts per strategy and outcome, CHGNet time per relaxation (s), filter pass rate,
    most common rejection reasons, from ``folder/generated/attempts.jsonl``."""
    log = Path(folder) / "generated" / "attempts.jsonl"
    if not log.exists():
        return [f"{log}: no attempts yet"]
    lines = []
    att = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    relaxed = [a for a in att if "relax_seconds" in a]
    lines.append(
        f"attempts: {len(att)}, relaxed: {len(relaxed)}, outcomes: "
        f"{dict(collections.Counter(a['status'] for a in att))}"
    )
    for strat in sorted({a.get("strategy", "?") for a in att}):
        rs = [a for a in relaxed if a.get("strategy") == strat]
        if not rs:
            continue
        sec = np.array([a["relax_seconds"] for a in rs])
        steps = np.array([a["relax_steps"] for a in rs])
        n_atoms = np.array([a["n_atoms"] for a in rs])
        passed = sum(a["status"] in ("accepted", "duplicate") for a in rs)
        lines.append(
            f"  {strat:9s} n={len(rs):4d}  pass filter {passed / len(rs):5.1%}  accepted "
            f"{sum(a['status'] == 'accepted' for a in rs):4d}  CHGNet s/relaxation median "
            f"{np.median(sec):6.1f} mean {sec.mean():6.1f}  steps median {np.median(steps):5.0f}  "
            f"atoms median {np.median(n_atoms):4.0f}"
        )
    sec = np.array([a["relax_seconds"] for a in relaxed])
    passed = sum(a["status"] in ("accepted", "duplicate") for a in relaxed)
    lines.append(
        f"  all       n={len(relaxed):4d}  pass filter {passed / max(len(relaxed), 1):5.1%}  "
        f"CHGNet s/relaxation median {np.median(sec):.1f} mean {sec.mean():.1f} total {sec.sum() / 3600:.2f} h"
    )
    reasons = collections.Counter()
    for a in att:
        for r in a.get("reason", "").split("; "):
            if r:
                reasons[r.split(" ")[0] + " " + " ".join(r.split(" ")[1:4])] += 1
    lines.append(f"  most common rejection reasons: {reasons.most_common(6)}")
    return lines
