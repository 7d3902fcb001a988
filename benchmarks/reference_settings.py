"""Which GPAW settings keep the reference spectra and cost the least? (issue: first-principles training spectra)

Recomputes reference sites (``data/reference/gpaw/``, computed with today's :class:`GPAWSettings`) under
cheaper settings and compares each new spectrum with the site's shipped record after the same
broadening (Gaussian FWHM 0.5 eV on the s2s grid, unit area): Pearson r, and the RMS difference of the
two grid spectra in eV^-1 (what the model sees). CPU seconds are the worker processes' user + system
time (``cpu_time_s`` of the record), so one MPI job on two cores counts both.

    python benchmarks/reference_settings.py run --variants h0.3,h0.25 --sites beta_cristobalite:2,...
    python benchmarks/reference_settings.py table            # markdown table of everything in --out

``run`` is resumable: one JSON per (variant, site) under ``--out`` (default runs/reference_settings);
a failure is written as ``<variant>/<site>.failed.json`` and the loop goes on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from s2s.files import atomic_write_text
from s2s.resources import resolve
from s2s.simulate.gpaw_ref import GPAWSettings, broaden_to_grid, load_record, record_path, run_site
from s2s.simulate.reference import make_plan, reference_structures

#: name -> the fields that differ from today's settings (GPAWSettings defaults); nice 0: the study times them
VARIANTS: dict[str, dict] = {
    "today_np2": {},
    "today_np1": {"mpi_procs": 1},
    "h0.25": {"mpi_procs": 1, "h": 0.25},
    "h0.3": {"mpi_procs": 1, "h": 0.3},
    "div8": {"mpi_procs": 1, "grid_divisor": 8},
    "scf1e-3": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3},
    "min8": {"mpi_procs": 1, "min_image": 8.0},
    "szp": {"mpi_procs": 1, "basis": "szp(dzp)"},
    "scf1e-3_min8": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "min_image": 8.0},
    "scf1e-3_np2": {"mpi_procs": 2, "scf_density": 1e-3, "scf_energy": 5e-3},
    # is 9 Å between core-hole images converged? (larger supercells than the reference's)
    "scf1e-3_min10": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "min_image": 10.0},
    "scf1e-3_min11": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "min_image": 11.0},
    # the conduction band sampled beyond Gamma (non-self-consistent bands on a k-mesh at the SCF density)
    "k15": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "xas_kpt_length": 15.0},
    "k20": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "xas_kpt_length": 20.0},
    "k30": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "xas_kpt_length": 30.0},
    "k20_min10": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "xas_kpt_length": 20.0, "min_image": 10.0},
    "k20_min11": {"mpi_procs": 1, "scf_density": 1e-3, "scf_energy": 5e-3, "xas_kpt_length": 20.0, "min_image": 11.0},
    # the same k-mesh reduced by time reversal (k and -k give the same sticks): should equal k20 at half the bands
    "k20_tr": {
        "mpi_procs": 1,
        "scf_density": 1e-3,
        "scf_energy": 5e-3,
        "xas_kpt_length": 20.0,
        "xas_time_reversal": True,
    },
}

#: the screening sites: every family of the reference set, cells of 40-84 atoms
DEFAULT_SITES = (
    "beta_cristobalite:2,suboxide_si2o3:8,tridymite_high_c2221:4,suboxide_sio:8,"
    "alpha_quartz:3,keatite:12,silica_p2_boisen:4,peroxy_quartz:71,stishovite:2,suboxide_si2o:8"
)


def settings_of(variant: str) -> GPAWSettings:
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return dataclasses.replace(GPAWSettings(), nice=0, **VARIANTS[variant])


def agreement(new: dict, old: dict, fwhm: float = 0.5) -> dict[str, float]:
    """Pearson r and RMS difference (eV^-1) of two records' sticks broadened alike (unit-area grid spectra)."""
    a = broaden_to_grid(np.asarray(new["energies_eV"]), np.asarray(new["intensity"]), fwhm)
    b = broaden_to_grid(np.asarray(old["energies_eV"]), np.asarray(old["intensity"]), fwhm)
    return {"pearson": float(np.corrcoef(a, b)[0, 1]), "rms_eV^-1": float(np.sqrt(np.mean((a - b) ** 2)))}


def cmd_run(a: argparse.Namespace) -> int:
    ref = resolve("reference")
    wanted = [(x.split(":")[0], int(x.split(":")[1])) for x in a.sites.split(",")]
    plan = {
        (sid, k): (sid, s, k, m)
        for sid, s, k, m in make_plan(sorted({w[0] for w in wanted}), ref, reference_structures())
    }
    for variant in a.variants.split(","):
        settings = settings_of(variant)
        out = Path(a.out) / variant
        out.mkdir(parents=True, exist_ok=True)
        for sid, k in wanted:
            p = record_path(out, sid, k)
            if p.exists() or (p.with_suffix(".failed.json").exists() and not a.retry_failed):
                continue
            _, s, _, mult = plan[(sid, k)]
            t0 = time.time()
            try:
                rec = run_site(s, sid, k, settings, workdir=a.workdir, extra={"variant": variant})
            except Exception as exc:  # record and go on
                atomic_write_text(
                    p.with_suffix(".failed.json"),
                    json.dumps(
                        {
                            "error": str(exc)[-3000:],
                            "traceback": traceback.format_exc()[-3000:],
                            "wall_s": time.time() - t0,
                        },
                        indent=1,
                    ),
                )
                print(f"FAILED {variant} {sid}:{k}: {str(exc)[:200]}", flush=True)
                continue
            atomic_write_text(p, json.dumps(rec, indent=1))
            old = load_record(record_path(ref / "gpaw", sid, k))
            ag = agreement(rec, old) if rec["sanity"]["passed"] else {"pearson": float("nan")}
            print(
                f"{variant} {sid}:{k} {rec['settings']['supercell_atoms']} atoms: cpu {rec['cpu_time_s']:.0f} s, "
                f"wall {rec['wall_time_s']['total']:.0f} s, r = {ag['pearson']:.4f}",
                flush=True,
            )
    return 0


def rows(out: Path, ref: Path) -> list[dict]:
    res = []
    for vdir in sorted(p for p in out.iterdir() if p.is_dir()):
        for p in sorted(vdir.glob("*__site*.json")):
            if p.name.endswith(".failed.json"):
                continue
            rec = json.loads(p.read_text())
            old = load_record(record_path(ref / "gpaw", rec["structure_id"], rec["site_index"]))
            ag = (
                agreement(rec, old) if rec["sanity"]["passed"] else {"pearson": float("nan"), "rms_eV^-1": float("nan")}
            )
            res.append(
                {
                    "variant": vdir.name,
                    "site": f"{rec['structure_id']}:{rec['site_index']}",
                    "atoms": rec["settings"]["supercell_atoms"],
                    "cpu_s": rec["cpu_time_s"],
                    "wall_s": rec["wall_time_s"]["total"],
                    "sanity": rec["sanity"]["passed"],
                    **ag,
                }
            )
    return res


def cmd_table(a: argparse.Namespace) -> int:
    res = rows(Path(a.out), resolve("reference"))
    print(
        "| variant | sites | atoms | Pearson r (min / median) | RMS (eV^-1, median) | CPU s per site (median / max) "
        "| CPU s per site vs today_np1 on the same sites |"
    )
    print("|---|---|---|---|---|---|---|")
    base = {r["site"]: r["cpu_s"] for r in res if r["variant"] == "today_np1"}
    for v in [v for v in VARIANTS if any(r["variant"] == v for r in res)]:
        rs = [r for r in res if r["variant"] == v]
        r_ = np.array([r["pearson"] for r in rs])
        ratio = [r["cpu_s"] / base[r["site"]] for r in rs if r["site"] in base]
        print(
            f"| {v} | {len(rs)} | {min(r['atoms'] for r in rs)}-{max(r['atoms'] for r in rs)} | "
            f"{np.nanmin(r_):.4f} / {np.nanmedian(r_):.4f} | {np.nanmedian([r['rms_eV^-1'] for r in rs]):.5f} | "
            f"{np.median([r['cpu_s'] for r in rs]):.0f} / {max(r['cpu_s'] for r in rs):.0f} | "
            f"{(f'{np.median(ratio):.2f} ({len(ratio)} sites)') if ratio else '-'} |"
        )
    if a.json:
        atomic_write_text(a.json, json.dumps(res, indent=1))
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    """Two variants against each other, site by site, at several broadenings (a convergence check)."""
    out = Path(a.out)
    fwhms = [float(f) for f in a.fwhm.split(",")]
    print(f"| site | {a.a} vs {a.b}: " + " | ".join(f"r / RMS @ {f} eV" for f in fwhms) + " |")
    print("|---|" + "---|" * len(fwhms))
    for pa in sorted((out / a.a).glob("*__site*.json")):
        pb = out / a.b / pa.name
        if pa.name.endswith(".failed.json") or not pb.exists():
            continue
        ra, rb = json.loads(pa.read_text()), json.loads(pb.read_text())
        cells = []
        for f in fwhms:
            ag = agreement(ra, rb, f)
            cells.append(f"{ag['pearson']:.3f} / {ag['rms_eV^-1']:.4f}")
        print(
            f"| {pa.stem} ({ra['settings']['supercell_atoms']} vs {rb['settings']['supercell_atoms']} atoms) | "
            + " | ".join(cells)
            + " |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--variants", default="h0.3")
    r.add_argument("--sites", default=DEFAULT_SITES)
    r.add_argument("--workdir", default=None)
    r.add_argument("--retry-failed", action="store_true")
    for p in (r, sub.add_parser("table")):
        p.add_argument("--out", default="runs/reference_settings")
    sub.choices["table"].add_argument("--json", type=Path, default=None)
    c = sub.add_parser("compare", help="variant A against variant B on their common sites")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--fwhm", default="0.5,1.0,1.5")
    c.add_argument("--out", default="runs/reference_settings")
    a = ap.parse_args(argv)
    return {"run": cmd_run, "table": cmd_table, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
