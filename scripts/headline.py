"""Write the headline table (figures/results.json next to the paper's numbers) into README.md.

    python scripts/headline.py            # rewrite the block between <!-- headline:begin/end --> in README.md
    python scripts/headline.py --print    # only print the table
    python scripts/headline.py --families # also print the glass families table (docs/amorphous.md's; no doc is
                                          # edited but README.md: --table-dir DIR writes DIR/families.md)

Every number comes from figures/results.json, which the notebooks write; nothing is typed in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.files import atomic_write_text  # noqa: E402
from s2s.studies.results import families_table, headline_table, read_results, replace_block  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "figures" / "results.json")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--print", action="store_true", help="print the table, do not touch the README")
    ap.add_argument(
        "--families", action="store_true", help="also print the per-composition table of both glass families"
    )
    ap.add_argument("--table-dir", type=Path, default=None, help="with --families: also write it to DIR/families.md")
    a = ap.parse_args()
    results = read_results(a.results)
    table = headline_table(results)
    if a.print:
        print(table)
    else:
        atomic_write_text(a.readme, replace_block(a.readme.read_text(), table))
        print(f"headline table written to {a.readme}")
    if a.families:
        families = families_table(results)
        print(families)
        if a.table_dir:
            path = a.table_dir / "families.md"
            atomic_write_text(path, families + "\n")
            print(f"glass families table -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
