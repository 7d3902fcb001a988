#!/usr/bin/python3
"""GPAW O K-edge worker, run by the system python (Debian ``gpaw``), never imported by s2s.

Two stages, each a separate process started by :mod:`s2s.simulate.gpaw_ref`:

``scf IN.json OUT.gpw SUMMARY.json``
    Ground-state SCF of the supercell with a half-core-hole setup on the excited atom.
    May run under ``mpirun -np N``.  Writes the GPAW restart file and a small JSON summary.
``xas IN.json IN.gpw OUT.json``
    Serial (``gpaw.xas.XAS`` asserts one process): reads the restart file and writes the
    stick spectrum (all bands above the occupied ones), every Kohn-Sham eigenvalue (eV),
    occupation numbers and the electron count, for the driver's sanity check.
``both IN.json SUMMARY.json OUT.json``
    One serial process: the SCF, then the XAS step on the live calculator (no restart file
    written or read); what the driver uses when a site runs on one core.

The input JSON (written by the driver) holds: symbols, positions (Å), cell (Å), excited_index,
setup_dir, setup_name, mode ('lcao' or 'pw'), basis, xc, h (Å), ecut (eV, pw only), nbands,
charge, occupation_width (eV), force_complex_dtype, maxiter, txt; optional: gpts (grid points
per cell vector, used instead of h when given), convergence (GPAW's convergence dict).
Standard library + numpy + ase + gpaw only (this runs outside the project's venv).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def _atomic_write_json(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh)
    os.replace(tmp, path)


def _atoms(inp: dict):
    from ase import Atoms

    return Atoms(
        symbols=inp["symbols"],
        positions=np.asarray(inp["positions"], float),
        cell=np.asarray(inp["cell"], float),
        pbc=True,
    )


def _calc_kwargs(inp: dict) -> dict:
    from gpaw import PW

    mode = inp["mode"]
    kw = dict(
        xc=inp["xc"],
        kpts={"size": (1, 1, 1), "gamma": True},
        setups={int(inp["excited_index"]): inp["setup_name"]},
        charge=float(inp["charge"]),
        occupations={"name": "fermi-dirac", "width": float(inp["occupation_width"])},
        nbands=inp["nbands"],
        maxiter=int(inp["maxiter"]),
        symmetry="off",
        txt=inp["txt"],
    )
    if inp.get("convergence"):
        kw["convergence"] = dict(inp["convergence"])
    if mode == "lcao":
        kw.update(mode="lcao", basis=inp["basis"])
        if inp.get("gpts"):
            kw["gpts"] = tuple(int(n) for n in inp["gpts"])
        else:
            kw["h"] = float(inp["h"])
    elif mode == "pw":
        kw.update(mode=PW(float(inp["ecut"]), force_complex_dtype=bool(inp["force_complex_dtype"])))
        if inp.get("eigensolver"):
            kw["eigensolver"] = inp["eigensolver"]
        kw["convergence"] = {**kw.get("convergence", {}), "bands": inp.get("converge_bands", "occupied")}
    else:
        raise ValueError(f"worker input: mode must be 'lcao' or 'pw', got {mode!r}")
    return kw


def _load_input(in_json: str) -> dict:
    from gpaw import setup_paths

    with open(in_json) as fh:
        inp = json.load(fh)
    setup_paths.insert(0, inp["setup_dir"])
    return inp


def _scf(inp: dict):
    """Run the SCF; return (calculator, summary dict)."""
    from gpaw import GPAW
    from gpaw.mpi import world

    t0 = time.time()
    atoms = _atoms(inp)
    atoms.calc = GPAW(**_calc_kwargs(inp))
    energy = atoms.get_potential_energy()
    calc = atoms.calc
    summary = {
        "energy_eV": float(energy),
        "n_valence_electrons": float(calc.wfs.nvalence),
        "n_bands": int(calc.get_number_of_bands()),
        "scf_iterations": int(calc.get_number_of_iterations()),
        "mpi_size": int(world.size),
        "gpts": [int(n) for n in calc.wfs.gd.N_c],
        "wall_s": time.time() - t0,
    }
    return calc, summary


def stage_scf(in_json: str, out_gpw: str, summary_json: str) -> None:
    from gpaw.mpi import world

    inp = _load_input(in_json)
    calc, summary = _scf(inp)
    calc.write(out_gpw, mode="all")
    if world.rank == 0:
        _atomic_write_json(summary_json, summary)


def stage_both(in_json: str, summary_json: str, out_json: str) -> None:
    inp = _load_input(in_json)
    calc, summary = _scf(inp)
    _atomic_write_json(summary_json, summary)
    _xas(inp, calc, out_json)


def stage_xas(in_json: str, in_gpw: str, out_json: str) -> None:
    from gpaw import GPAW

    inp = _load_input(in_json)
    _xas(inp, GPAW(in_gpw, txt=None), out_json)


def _xas(inp: dict, calc, out_json: str) -> None:
    """Sticks of the excited O (every empty band).  With ``xas_kpts`` (a k-mesh other than Gamma) the bands
    come from a non-self-consistent run at the SCF's fixed density on that Gamma-centred mesh (each k-point's
    sticks weighted by its weight), so the conduction band is sampled beyond the supercell's Gamma point;
    the eigenvalues and occupations written for the sanity check stay those of the SCF at Gamma."""
    from gpaw.xas import XAS

    t0 = time.time()
    eps = calc.get_eigenvalues(kpt=0, spin=0)
    occ = calc.get_occupation_numbers(kpt=0, spin=0)
    mesh = [int(n) for n in (inp.get("xas_kpts") or (1, 1, 1))]
    band_calc = calc
    if any(n > 1 for n in mesh):
        # time reversal only (no point group: the core hole breaks it): k and -k give the same sticks
        sym = {"point_group": False, "time_reversal": True} if inp.get("xas_time_reversal") else "off"
        band_calc = calc.fixed_density(kpts={"size": mesh, "gamma": True}, symmetry=sym, txt=inp["txt"] + ".bands")
    xas = XAS(band_calc, mode="xas", center=int(inp["excited_index"]))
    e_stick, a_stick = xas.get_spectra(stick=True)
    e_stick = np.asarray(e_stick, float)
    a_stick = np.asarray(a_stick, float)
    order = np.argsort(e_stick, kind="stable")  # k-point by k-point -> ascending energy
    _atomic_write_json(
        out_json,
        {
            "stick_energies_eV": e_stick[order].tolist(),
            "stick_intensity_xyz": a_stick[:, order].tolist(),
            "eigenvalues_eV": np.asarray(eps, float).tolist(),
            "occupations": np.asarray(occ, float).tolist(),
            # wfs.nvalence: electrons actually placed in bands (GPAW's
            # get_number_of_electrons() subtracts the setup's +0.5 core-hole charge).
            "n_valence_electrons": float(calc.wfs.nvalence),
            "fermi_level_eV": float(calc.get_fermi_level()),
            "xas_kpts": mesh,
            "xas_n_kpoints": int(len(band_calc.wfs.kd.ibzk_kc)),
            "wall_s": time.time() - t0,
        },
    )


def main(argv: list[str]) -> int:
    stages = {"scf": stage_scf, "xas": stage_xas, "both": stage_both}
    if len(argv) != 4 or argv[0] not in stages:
        sys.stderr.write(__doc__ or "")
        return 2
    stages[argv[0]](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
