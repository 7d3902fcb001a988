"""Write the headline table (figures/results.json next to the paper's numbers) into README.md.

    python scripts/headline.py            # rewrite the block between <!-- headline:begin/end --> in README.md
    python scripts/headline.py --print    # only print the table
    python scripts/headline.py --amorphous-doc docs/amorphous.md   # also the glass families table there

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
        "--amorphous-doc", type=Path, default=None, help="also write the per-composition table of both glass families"
    )
    a = ap.parse_args()
    results = read_results(a.results)
    table = headline_table(results)
    if a.print:
        print(table)
        if a.amorphous_doc:
            print(families_table(results))
        return 0
    atomic_write_text(a.readme, replace_block(a.readme.read_text(), table))
    print(f"headline table written to {a.readme}")
    if a.amorphous_doc:
        doc = a.amorphous_doc
        atomic_write_text(doc, replace_block(doc.read_text(), families_table(results), name="families"))
        print(f"glass families table written to {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
