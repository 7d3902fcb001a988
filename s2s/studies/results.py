"""``figures/results.json``: the machine-readable record of every headline number.

Each producer (the dataset build, each notebook) owns one top-level key and replaces it
atomically; other keys are kept.  A lock file serialises concurrent writers.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from s2s.files import write_json
from s2s.resources import default_path

DEFAULT_PATH = default_path("results")


def read_results(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return data


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) replaced by None: results.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def update_results(key: str, value: Any, path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    """Set ``results[key] = value`` (replacing that key only), written atomically.

    Non-finite floats are written as ``null`` (strict JSON, readable by any tool)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            data = read_results(path)
            data[key] = _finite(value)
            write_json(path, dict(sorted(data.items())))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    try:
        os.unlink(lock)
    except FileNotFoundError:
        pass
    return data


# ----------------------------------------------------------------------------- headline table

#: The paper's headline numbers (Okubo et al.; CASTEP data, 274 Materials Project Si-O crystals).
PAPER = {
    "rmsd_shell1": 0.063,
    "rmsd_all": 0.804,
    "cn_error_shell1_pct": 1.86,
    "cn_error_shell2_pct": 4.27,
    "species_accuracy": 0.949,
    "model_win_rate": 0.521,
    "amorphous_sio2_rmsd_shell1": 0.137,
    "amorphous_sio025_rmsd_shell1": 0.778,
}


def _get(results: dict, *keys: str) -> Any:
    cur: Any = results
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _fmt(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, fmt)


def _interval(results: dict, *keys: str) -> tuple[float, float] | None:
    v = _get(results, *keys)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return (float(v[0]), float(v[1]))
    return None


#: the input spectra of the headline rows: our simulator's, unless a row reads the reference method's
XTB_INPUT, REFERENCE_INPUT = "xTB", "GPAW"
#: GPAW spectra made xTB-like by the shipped fidelity map first (``s2s predict --input-map``, docs/fidelity.md)
MAPPED_INPUT = "GPAW + map"


#: a headline row without its input: (quantity, paper value, ours, format, 95 % interval or None)
_Row = tuple[str, Any, Any, str, tuple[float, float] | None]


def _xtb_rows(results: dict) -> list[_Row]:
    """The headline rows of the model reading our simulator's spectra (notebooks 03-05, 07's transfer)."""
    tg = results.get("test_generation", {})
    am = results.get("amorphous_generation", {})

    def ci(key: str) -> tuple[float, float] | None:
        return _interval(tg, "ci95", key)

    return [
        ("1st-shell RMSD, test crystals (Å)", PAPER["rmsd_shell1"], tg.get("rmsd_shell1"), ".3f", ci("rmsd_shell1")),
        (
            "1st-shell RMSD, mirror images counted equal (Å)",
            None,
            _get(tg, "mirror_images_equal", "rmsd_shell1"),
            ".3f",
            _interval(tg, "mirror_images_equal", "ci95", "rmsd_shell1"),
        ),
        *(
            (label, None, _get(tg, "first_shell", key), fmt, ci(key))
            for label, key, fmt in (
                ("1st shell on its own: radial RMSD, as EXAFS fits (Å)", "rmsd_shell1_radial", ".3f"),
                ("1st shell on its own: RMSD aligned on itself (Å)", "rmsd_shell1_local", ".3f"),
                ("1st shell on its own: Si-O-Si angle error (°)", "angle_shell1_error_deg", ".1f"),
            )
        ),
        ("2nd-shell RMSD (Å)", None, tg.get("rmsd_shell2"), ".3f", ci("rmsd_shell2")),
        ("3rd-shell RMSD (Å)", None, tg.get("rmsd_shell3"), ".3f", ci("rmsd_shell3")),
        ("RMSD, all atoms to the 3rd shell (Å)", PAPER["rmsd_all"], tg.get("rmsd_all"), ".3f", ci("rmsd_all")),
        (
            "CN error, 1st shell (%)",
            PAPER["cn_error_shell1_pct"],
            tg.get("cn_error_shell1_pct"),
            ".2f",
            ci("cn_error_shell1_pct"),
        ),
        (
            "CN error, 2nd shell (%)",
            PAPER["cn_error_shell2_pct"],
            tg.get("cn_error_shell2_pct"),
            ".2f",
            ci("cn_error_shell2_pct"),
        ),
        (
            "species accuracy (O fraction exact)",
            PAPER["species_accuracy"],
            tg.get("species_accuracy"),
            ".3f",
            ci("species_accuracy"),
        ),
        (
            "wins over template matching (SOAP)",
            PAPER["model_win_rate"],
            _get(results, "template_matching", "model_win_rate"),
            ".3f",
            _interval(results, "template_matching", "model_win_rate_ci95"),
        ),
        (
            "amorphous SiO2: 1st-shell RMSD (Å)",
            PAPER["amorphous_sio2_rmsd_shell1"],
            _get(am, "rmsd_shell1", "2.0")
            if _get(am, "rmsd_shell1", "2.0") is not None
            else _get(am, "rmsd_shell1", "2.00"),
            ".3f",
            None,
        ),
        (
            "amorphous SiO0.25: 1st-shell RMSD (Å)",
            PAPER["amorphous_sio025_rmsd_shell1"],
            _get(am, "rmsd_shell1", "0.25"),
            ".3f",
            None,
        ),
        *(
            (
                f"consensus of 8 samples (what s2s predict writes first): {label}",
                None,
                _get(results, "test_generation", "composition_medoid_of_k", key),
                ".3f",
                None,
            )
            for label, key in (
                ("1st-shell RMSD (Å)", "rmsd_shell1"),
                ("species accuracy", "species_accuracy"),
                ("wins over template matching", "template_win_rate"),
            )
        ),
        (
            "amorphous SiO2, network glasses: 1st-shell RMSD (Å)",
            None,
            _get(am, "network", "rmsd_shell1", "2.00"),
            ".3f",
            None,
        ),
    ]


def _reference_rows(results: dict) -> tuple[_Row, list[_Row], list[_Row]]:
    """(the same sites read from their xTB spectra, the rows of the model reading GPAW spectra, the rows of it
    reading them through the fidelity map): ``test_generation.reference_input`` (and its ``mapped_input``),
    ``template_matching.reference_input``, ``experimental_quartz`` (and its ``mapped_input``)."""
    ri = _get(results, "test_generation", "reference_input") or {}
    ri_tm = _get(results, "template_matching", "reference_input") or {}
    ri_n = f"{_fmt(ri.get('n_test'), 'd')} test sites of {_fmt(ri.get('n_structures'), 'd')} structures"
    reference_rows = [
        (
            f"1st-shell RMSD, the {ri_n} with a GPAW spectrum (Å)",
            None,
            ri.get("rmsd_shell1"),
            ".3f",
            _interval(ri, "ci95", "rmsd_shell1"),
        ),
        (
            "species accuracy, the same sites",
            None,
            ri.get("species_accuracy"),
            ".3f",
            _interval(ri, "ci95", "species_accuracy"),
        ),
        ("validity, the same sites", None, ri.get("validity"), ".3f", _interval(ri, "ci95", "validity")),
    ]
    sio2 = _get(ri, "subsets", "SiO2")
    if sio2:  # the composition of the paper's test set (~90 % SiO2) and of most silica measured
        n = f"{_fmt(sio2.get('n_test'), 'd')} SiO2 sites ({_fmt(sio2.get('n_structures'), 'd')} structures)"
        reference_rows += [
            (
                f"1st-shell RMSD, the {n} among them (Å)",
                None,
                sio2.get("rmsd_shell1"),
                ".3f",
                _interval(sio2, "ci95", "rmsd_shell1"),
            ),
            (
                "species accuracy, the same SiO2 sites",
                None,
                sio2.get("species_accuracy"),
                ".3f",
                _interval(sio2, "ci95", "species_accuracy"),
            ),
        ]
    reference_rows += [
        (
            f"wins over template matching in a GPAW library, the {_fmt(ri.get('n_test'), 'd')} sites",
            None,
            ri_tm.get("model_win_rate"),
            ".3f",
            _interval(ri_tm, "model_win_rate_ci95"),
        ),
    ]
    eq = results.get("experimental_quartz", {})
    quartz = ("GPAW alpha-quartz spectrum: RMSD all, median of the ensemble (Å)", None, None, ".3f", None)
    reference_rows.append((*quartz[:2], eq.get("rmsd_all"), *quartz[3:]))
    mapped = ri.get("mapped_input") or {}
    mapped_rows = [
        (
            "1st-shell RMSD, the same sites (Å)",
            None,
            mapped.get("rmsd_shell1"),
            ".3f",
            _interval(mapped, "ci95", "rmsd_shell1"),
        ),
        (
            "species accuracy, the same sites",
            None,
            mapped.get("species_accuracy"),
            ".3f",
            _interval(mapped, "ci95", "species_accuracy"),
        ),
        ("validity, the same sites", None, mapped.get("validity"), ".3f", _interval(mapped, "ci95", "validity")),
    ]
    mapped_rows.append((*quartz[:2], _get(eq, "mapped_input", "rmsd_all"), *quartz[3:]))
    paired = (
        "1st-shell RMSD, the same sites from their xTB spectra (Å)",
        None,
        _get(ri, "xtb_input", "rmsd_shell1"),
        ".3f",
        _interval(ri, "xtb_input", "ci95", "rmsd_shell1"),
    )
    return paired, reference_rows, mapped_rows


def headline_rows(results: dict) -> list[tuple[str, str, Any, Any, str, tuple[float, float] | None]]:
    """(quantity, input spectra, paper value, ours, format, our 95 % interval over the test structures or None)
    for the README's headline table; the intervals are notebook 03's ``test_generation.ci95`` (and
    ``test_generation.reference_input.ci95``) and notebook 04's ``template_matching.model_win_rate_ci95``
    (:mod:`s2s.studies.bootstrap`).  ``input``: :data:`XTB_INPUT` (our simulator, GFN1-xTB Z+1) or
    :data:`REFERENCE_INPUT` (GPAW half core hole, issue 29) spectra given to the model, or :data:`MAPPED_INPUT`
    (those spectra through the shipped fidelity map), with the generator that read them in brackets where
    the results record it (``model`` of ``test_generation``, of its ``reference_input`` and ``mapped_input``)."""
    paired, reference_rows, mapped_rows = _reference_rows(results)
    tg = results.get("test_generation", {})
    ri = tg.get("reference_input") or {}

    def read_by(label: str, model: str | None) -> str:  # which generator read the row's spectra, where recorded
        return label if not model else f"{label} ({model})"

    xtb = read_by(XTB_INPUT, tg.get("model"))
    rows = [(q, xtb, *rest) for q, *rest in _xtb_rows(results)]
    rows += [(paired[0], read_by(XTB_INPUT, ri.get("model")), *paired[1:])]
    rows += [(q, read_by(REFERENCE_INPUT, ri.get("model")), *rest) for q, *rest in reference_rows]
    mapped = read_by(MAPPED_INPUT, (ri.get("mapped_input") or {}).get("model"))
    rows += [(q, mapped, *rest) for q, *rest in mapped_rows]
    old = ri.get("xtb_model_input")  # the same GPAW spectra read as they are by the xTB generator, where recorded
    if old:
        rows += [
            (q, read_by(REFERENCE_INPUT, old.get("model")), None, old.get(k), ".3f", _interval(old, "ci95", k))
            for q, k in (
                ("1st-shell RMSD, the same sites (Å)", "rmsd_shell1"),
                ("species accuracy, the same sites", "species_accuracy"),
                ("validity, the same sites", "validity"),
            )
        ]
    return rows


def headline_table(results: dict) -> str:
    """Markdown table of the headline numbers next to the paper's ("—" where there is none), with our
    95 % interval over the test structures where notebooks 03/04 wrote one."""
    d = results.get("data", {})
    tg = results.get("test_generation", {})
    lines = [
        f"| quantity | input spectra | paper (CASTEP, 2,067 sites) | s2s, open dataset ({_fmt(d.get('n_sites'), 'd')} "
        f"sites, {_fmt(tg.get('n_test'), 'd')} test) | 95 % interval, resampling test structures |",
        "|---|---|---|---|---|",
    ]
    for name, source, paper, ours, fmt, iv in headline_rows(results):
        ci = f"{_fmt(iv[0], fmt)}-{_fmt(iv[1], fmt)}" if iv is not None else "—"
        lines.append(f"| {name} | {source} | {_fmt(paper, fmt)} | {_fmt(ours, fmt)} | {ci} |")
    return "\n".join(lines)


def families_table(results: dict) -> str:
    """Markdown table of the model on both glass families per composition x (notebook 05's
    ``amorphous_generation`` and its ``network`` key): sites, 1st-shell RMSD (Å) and species accuracy
    per family, template matching's species accuracy and the model's win rate on the network family."""
    ag = results.get("amorphous_generation", {})
    net = ag.get("network", {})
    xs = sorted(set(ag.get("n", {})) | set(net.get("n", {})), key=float)
    if not xs:
        raise ValueError("results have no amorphous_generation per composition (run notebook 05)")

    def cell(values: dict, n: dict, x: str, fmt: str) -> str:  # "—" where the family has no site at x
        v = values.get(x)
        return _fmt(v, fmt) if v is not None and (n.get(x) or 0) > 0 else "—"

    n_t, n_n = ag.get("n", {}), net.get("n", {})

    lines = [
        "| x | Tersoff n | Tersoff 1st shell (Å) | Tersoff species | network n | network 1st shell (Å) "
        "| network species | network template species | network wins |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in xs:
        tersoff = [cell(ag.get(k, {}), n_t, x, f) for k, f in (("rmsd_shell1", ".3f"), ("species_accuracy", ".2f"))]
        network = [
            cell(vals, n_n, x, f)
            for vals, f in (
                (net.get("rmsd_shell1", {}), ".3f"),
                (net.get("species_accuracy", {}), ".2f"),
                (net.get("template", {}).get("species_accuracy", {}), ".2f"),
                (net.get("model_win_rate", {}), ".2f"),
            )
        ]
        lines.append(
            f"| {x} | {n_t.get(x, 0)} | " + " | ".join(tersoff) + f" | {n_n.get(x, 0)} | " + " | ".join(network) + " |"
        )
    return "\n".join(lines)


def replace_block(text: str, block: str, name: str = "headline") -> str:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``text``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"no '{begin}' ... '{end}' block in the text")
    return text[: i + len(begin)] + "\n" + block.rstrip("\n") + "\n" + text[j:]


def round_floats(obj: Any, digits: int = 4) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (dicts/lists recursed;
    NaN/inf -> None), for the results file."""
    if isinstance(obj, Mapping):
        return {str(k): round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return float(f"{f:.{digits}g}") if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
