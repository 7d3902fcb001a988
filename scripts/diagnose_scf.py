"""Watch a failing GFN1-xTB SCF: restart it every N cycles and print energy and the most charged atoms.

    python scripts/diagnose_scf.py data/amorphous/n72/cells/SiO1.00_n72_c0.json 36 [--chunk 10] [--restarts 5]

The cell is set up exactly as the training simulator does (``XtbSettings()``: Z+1 on the given O
site, charge 0, 300 K, min-image supercell); each restart continues from the last density with a
fresh Broyden history (``Calculator.singlepoint(result)``).  Per restart: the energy (Eh) and the
four atoms with the largest |Mulliken charge| (e) with their Si/O neighbour counts.  This is the
measurement behind "What diverges" in docs/amorphous.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cell", type=Path, help="pymatgen Structure JSON of the cell")
    ap.add_argument("site", type=int, help="index of the excited O")
    ap.add_argument("--chunk", type=int, default=10, help="SCF cycles per restart")
    ap.add_argument("--restarts", type=int, default=5)
    a = ap.parse_args()

    from pymatgen.core import Structure
    from tblite.interface import Calculator, Result

    from s2s.amorphous import analysis as an
    from s2s.simulate.xtb import (
        BOHR_ANGSTROM,
        KELVIN_HARTREE,
        XtbSettings,
        _matrix_tuple,
        make_supercell,
        supercell_matrix,
    )

    try:
        st = Structure.from_dict(json.loads(a.cell.read_text()))
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"{a.cell}: not a pymatgen Structure JSON ({err})") from None
    if not 0 <= a.site < len(st) or st[a.site].specie.symbol != "O":
        raise SystemExit(f"{a.cell}: site {a.site} is not an O site")
    s = XtbSettings()
    numbers, pos, lat = make_supercell(st, _matrix_tuple(supercell_matrix(st, s)))
    numbers = numbers.copy()
    numbers[a.site] = 9  # Z+1
    calc = Calculator(
        s.method,
        numbers,
        pos / BOHR_ANGSTROM,
        charge=float(s.total_charge),
        lattice=lat / BOHR_ANGSTROM,
        periodic=np.array([True, True, True]),
    )
    calc.set("verbosity", 0)
    calc.set("max-iter", a.chunk)
    calc.set("temperature", s.temperature * KELVIN_HARTREE)
    cn = an.coordination(st)
    res = Result()
    for k in range(a.restarts):
        try:
            calc.singlepoint(res)
            converged = True
        except Exception:  # noqa: BLE001 - tblite raises when the SCF is not converged in max-iter
            converged = False
        q = np.asarray(res.get("charges"))
        top = np.argsort(-np.abs(q))[:4]
        atoms = ", ".join(
            f"{st[int(i)].specie.symbol}{int(i)} {q[i]:+.2f} e ({cn['Si'][i]} Si + {cn['O'][i]} O)" for i in top
        )
        print(
            f"cycles {(k + 1) * a.chunk:4d}: E {float(np.asarray(res.get('energy'))):10.1f} Eh"
            f"{' converged' if converged else ''}; {atoms}"
        )
        if converged:
            break


if __name__ == "__main__":
    main()
