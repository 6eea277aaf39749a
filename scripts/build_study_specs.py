"""Build the population specs of the built-in studies from their human samples (offline).

    python scripts/build_study_specs.py            # write personas/<study>.yaml + seed parquet files
    python scripts/build_study_specs.py --check    # rebuild in memory, exit 1 if the committed files differ

Each study's personas are drawn to the composition of its own human sample, so that a
silicon-vs-human distance measures fidelity, not a difference in who was asked:

- ``us_gss_waves``  GSS abortion items (``gss_abortion``), six waves 1977-2018, year-conditioned;
- ``us_anes_waves`` ANES party thermometers (``anes_partytherms``), five waves 1980-2012, year-conditioned;
- ``bfi_sample``    the SAPA Big Five web volunteers (``bfi``).

Inputs are the committed derived reference files (``surveys/reference/<dataset>.parquet``, built
by ``scripts/build_reference.py``), so the spec, its seed and the human reference the run loads
use the same rows and codes. A study's rows are the data set's respondents of the chosen waves who
answered at least one of the study's questions and have every seed attribute (complete cases);
each target share is that attribute's weighted share over those rows, and the seed microdata are
those rows, so the seed's margins equal the targets and raking keeps the sample's joint structure.
Category labels, cue texts and backstory templates of the shared codes are read from
``personas/us_adults.yaml`` (one definition of each code's wording).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from simsurvey.io import write_bytes, write_table
from simsurvey.reference.builtin import BFI_ITEMS, BUILTIN, GSS_ABORTION_ITEMS
from simsurvey.reference.codes import value_keys

ROOT = Path(__file__).resolve().parents[1]
PERSONAS = ROOT / "personas"
US_SPEC = PERSONAS / "us_adults.yaml"
#: Target shares are rounded to this many decimals (largest remainder: each attribute sums to 1).
DECIMALS = 4

#: GSS waves: every wave from the first with all seven items (1977; abany was first asked then) to
#: the last in the extract (2018), about eight years apart: 1977, 1985, 1994, 2000, 2010, 2018
#: (8, 9, 6, 10, 8 years). 1994 rather than 1993 and 2000 rather than 2002: from 1988 the battery
#: went to about two thirds of each sample, and in 1993/2002 to fewer (1,060 / 917 answered),
#: against 1,989 / 1,843 in 1994 / 2000.
GSS_WAVES: tuple[int, ...] = (1977, 1985, 1994, 2000, 2010, 2018)
#: ANES waves: the presidential-election years eight years apart, 1980-2012 (the same campaign
#: context in every wave; 2012, the last and largest wave, is the instrument's former single wave).
ANES_WAVES: tuple[int, ...] = (1980, 1988, 1996, 2004, 2012)
ANES_THERMS: tuple[str, ...] = ("therm_dem", "therm_gop")


@dataclass(frozen=True)
class Study:
    """One built-in study's population: which rows of which data set, and which attributes."""

    name: str
    dataset: str
    title: str
    description: str
    answers: tuple[str, ...]
    answers_text: str
    attributes: tuple[str, ...]
    waves: tuple[int, ...] | None = None
    waves_reason: str = ""
    #: Attributes not in the data, copied from us_adults.yaml (drawn independently of the rest).
    external: tuple[str, ...] = ()
    compare: tuple[str, ...] | None = None
    baseline_cells: tuple[tuple[str, ...], ...] | None = None
    left_out: dict[str, str] = field(default_factory=dict)
    caveat: str = ""


STUDIES: tuple[Study, ...] = (
    Study(
        name="us_gss_waves",
        dataset="gss_abortion",
        title="GSS respondents of six waves 1977-2018 (the abortion battery's human sample)",
        description=(
            "US adults as sampled by the General Social Survey in 1977, 1985, 1994, 2000, 2010 and 2018 "
            "(the respondents asked the abortion items), each persona in one survey year."
        ),
        answers=GSS_ABORTION_ITEMS,
        answers_text="answered at least one of the seven abortion items",
        attributes=("year", "sex", "age", "education"),
        waves=GSS_WAVES,
        waves_reason=(
            "1977 is the first wave with all seven items (abany was first asked then; none were asked in "
            "1986) and 2018 the last in the extract; in between, waves about eight years apart (1985, 1994, "
            "2000, 2010), preferring 1994 over 1993 and 2000 over 2002, where the battery went to fewer "
            "respondents (1,060 / 917 answered against 1,989 / 1,843)."
        ),
        compare=("year", "sex", "age", "education", "college"),
        # Year and education are what abortion opinion moves with most; sex the least.
        baseline_cells=(
            ("year", "education", "age", "sex"),
            ("year", "college", "age", "sex"),
            ("year", "college", "age"),
            ("year", "college"),
            ("year",),
            (),
        ),
        left_out={
            "race_ethnicity": (
                "The GSS asked its Hispanic item only from 2000 on; before that its race item (White / "
                "Black / Other) cannot say who is Hispanic, so race/ethnicity cannot be expressed in 1977, "
                "1985 or 1994 and is left out rather than invented."
            ),
            "region": "not in the gss_abortion extract",
            "household_income": "not in the gss_abortion extract",
        },
        caveat=(
            "Education comes from years of schooling (<12, 12, 13-15, 16, 17+), an approximation of the "
            "highest degree, which the extract does not carry."
        ),
    ),
    Study(
        name="us_anes_waves",
        dataset="anes_partytherms",
        title="ANES respondents of five presidential waves 1980-2012 (the party thermometers' human sample)",
        description=(
            "US adults as sampled by the American National Election Studies in 1980, 1988, 1996, 2004 and "
            "2012 (the respondents who rated a party on the feeling thermometer), white, Black or Hispanic, "
            "each persona in one survey year."
        ),
        answers=ANES_THERMS,
        answers_text="rated the Democratic or the Republican Party on the feeling thermometer",
        attributes=("year", "age", "education", "race_ethnicity", "region"),
        waves=ANES_WAVES,
        waves_reason=(
            "the presidential-election waves eight years apart from 1980 to 2012 (1980, 1988, 1996, 2004, "
            "2012), so every wave has the same campaign context; 2012 is the last and largest wave."
        ),
        external=("sex",),
        compare=("year", "age", "education", "college", "race_ethnicity", "region"),
        # No sex in the human data: a cell with sex would never hold a human respondent.
        baseline_cells=(
            ("year", "race_ethnicity", "age", "education", "region"),
            ("year", "race_ethnicity", "age", "college"),
            ("year", "race_ethnicity", "age"),
            ("year", "race_ethnicity"),
            ("year",),
            (),
        ),
        left_out={
            "race_ethnicity other": (
                "race4 codes white non-Hispanic, Black non-Hispanic, Hispanic and 'other'; 'other' lumps Asian "
                "Americans with everyone else, so it is neither asian_nh nor other_multiple_nh. Those "
                "respondents (496 of the 12,188 who rated a party in these waves, 4.1%) are left out of the "
                "population, as are the 60 whose race is missing: its race/ethnicity attribute has the three "
                "codes the data can express, and its personas are never Asian or of another race."
            ),
            "household_income": (
                "incomeperc is a within-year income percentile group (0-16th, 17-33rd, 34-67th, 68-95th, "
                "96-100th), not the shared dollar bands, and the derived file leaves household_income null; "
                "left out rather than recoded into bands it does not measure."
            ),
        },
        caveat=(
            "The extract has no sex variable: sex is drawn at the ACS 2022 adult share, independently of "
            "every other attribute, and cannot be compared with the human sample."
        ),
    ),
    Study(
        name="bfi_sample",
        dataset="bfi",
        title="SAPA Big Five web volunteers, adults (the personality items' human sample)",
        description=(
            "The adults of the psych::bfi sample: volunteers of the SAPA web personality project, spring "
            "2010 (young, female and educated on average; not representative of any population)."
        ),
        answers=BFI_ITEMS,
        answers_text="answered at least one of the 25 items",
        attributes=("sex", "age", "education"),
        compare=("sex", "age", "education", "college"),
        left_out={
            "race_ethnicity": "not in the bfi data",
            "region": "not in the bfi data",
            "household_income": "not in the bfi data",
        },
        caveat=(
            "A volunteer web sample, not a probability sample: the targets describe who took part in SAPA, "
            "not any population."
        ),
    ),
)


class _Flow(dict):
    """A mapping written on one line (a category)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))


def round_shares(weights: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    """Shares of ``weights`` rounded to ``decimals`` by largest remainder (they sum to exactly 1)."""
    unit = 10**decimals
    exact = np.asarray(weights, dtype=np.float64) / float(np.sum(weights)) * unit
    floor = np.floor(exact)
    short = round(unit - floor.sum())
    order = np.argsort(-(exact - floor), kind="stable")
    floor[order[:short]] += 1
    return floor / unit


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def study_rows(study: Study, data: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The study's rows: in its waves, answered at least one question, every seed attribute present."""
    counts = {"rows": len(data)}
    rows = data
    if study.waves is not None:
        rows = rows[rows["year"].isin(study.waves)]
        counts["in_waves"] = len(rows)
    rows = rows[rows[list(study.answers)].notna().any(axis=1)]
    counts["answered"] = len(rows)
    rows = rows.assign(year=value_keys(rows["year"])) if study.waves is not None else rows
    seed_cols = list(study.attributes)
    complete = rows[seed_cols].notna().all(axis=1) & rows["age_years"].notna()
    counts["dropped_missing"] = int((~complete).sum())
    for col in seed_cols:
        counts[f"missing_{col}"] = int(rows[col].isna().sum())
    rows = rows[complete].reset_index(drop=True)
    counts["kept"] = len(rows)
    return rows, counts


def _us_attribute(us: dict[str, Any], name: str) -> dict[str, Any]:
    return us["attributes"][name]


def _categories(study: Study, name: str, rows: pd.DataFrame, us: dict[str, Any]) -> tuple[list[_Flow], str]:
    """The attribute's categories with shares from the rows, and the arithmetic behind them."""
    weight = rows["weight"].to_numpy(dtype=np.float64)
    if name == "year":
        codes = [str(w) for w in study.waves or ()]
        meta = {c: {"label": c} for c in codes}
    else:
        present = set(rows[name].astype(str))
        meta = {c["code"]: c for c in _us_attribute(us, name)["categories"] if c["code"] in present}
        codes = list(meta)
        unknown = present - set(codes)
        if unknown:
            raise SystemExit(f"{study.dataset}: {name} has code {min(unknown)!r}, not one of us_adults.yaml")
    w = np.array([weight[(rows[name].astype(str) == c).to_numpy()].sum() for c in codes])
    if (w == 0).any():
        raise SystemExit(f"{study.name}: {name} code {codes[int(np.flatnonzero(w == 0)[0])]!r} has no respondent")
    shares = round_shares(w)
    total = w.sum()
    cats: list[_Flow] = []
    for code, share in zip(codes, shares):
        cat = _Flow(code=code, label=meta[code]["label"], share=float(share))
        for key in ("noun", "text"):
            if meta[code].get(key) is not None:
                cat[key] = meta[code][key]
        if name == "age":
            lo, hi = meta[code]["years"]
            top = int(rows.loc[rows[name] == code, "age_years"].max())
            # The last band is open: its upper bound is the oldest respondent's age (the data's top code).
            cat["years"] = [int(lo), top if code == codes[-1] else int(hi)]
        cats.append(cat)
    arithmetic = "; ".join(f"{c} {_fmt(x)}" for c, x in zip(codes, w)) + f"; each / {_fmt(total)}"
    return cats, arithmetic


def _rows_text(study: Study, counts: dict[str, int]) -> str:
    waves = f"of {', '.join(map(str, study.waves))} " if study.waves else ""
    return (f"{study.dataset} respondents {waves}who {study.answers_text} ({counts['answered']:,}), less "
            f"{counts['dropped_missing']:,} with a seed attribute missing: {counts['kept']:,} rows")


def build_spec(study: Study, data: pd.DataFrame, us: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame, dict]:
    """The spec (as a mapping), its seed rows and the seed's provenance for one study."""
    rows, counts = study_rows(study, data)
    prov = json.loads(Path(BUILTIN[study.dataset].provenance_path).read_text())
    rows_text = _rows_text(study, counts)
    unweighted = bool((rows["weight"] == 1).all())
    weight_text = ("weight (1 for every respondent: the data carry no survey weights, so the shares are "
                   "unweighted)" if unweighted else "weight (the data set's survey weight)")
    sample_caveat = (f"The {study.dataset} sample's own {'unweighted ' if unweighted else ''}composition (study rows: "
                     "source_note), not a census.")
    attributes: dict[str, Any] = {}
    order = list(study.attributes)
    if study.external:
        # Spec order: year first (its statement opens the cue), then sex, as in us_adults.yaml.
        order = [a for a in order if a == "year"] + list(study.external) + [a for a in order if a != "year"]
    for name in order:
        if name in study.external:
            us_attr = _us_attribute(us, name)
            attributes[name] = {
                "label": us_attr["label"],
                "source": {
                    "dataset": "none: not in " + study.dataset,
                    "copied_from": f"personas/us_adults.yaml attributes.{name} ({us_attr['source']['table']})",
                    "year": us_attr["source"]["year"],
                    "status": "assumed",
                    "arithmetic": us_attr["source"].get("arithmetic", ""),
                },
                "caveat": study.caveat,
                "categories": [_Flow({k: v for k, v in c.items() if k in ("code", "label", "share", "noun", "text")})
                               for c in us_attr["categories"]],
            }
            continue
        cats, arithmetic = _categories(study, name, rows, us)
        attr: dict[str, Any] = {}
        if name == "year":
            attr["label"] = "Survey year"
            attr["ordered"] = True
            attr["statement"] = "It is {label}."
        else:
            us_attr = _us_attribute(us, name)
            attr["label"] = us_attr["label"]
            for key in ("ordered", "backstory"):
                if us_attr.get(key):
                    attr[key] = us_attr[key]
        attr["source"] = {
            "dataset": f"{study.dataset} (surveys/reference/{study.dataset}.parquet)",
            "variable": name if name != "year" else "year (the survey wave)",
            "rows": f"the {counts['kept']:,} study rows (source_note)",
            "weight": weight_text,
            "status": "derived",
            "arithmetic": f"weighted counts {arithmetic}",
        }
        caveat = sample_caveat
        if name == "year":
            caveat += f" Waves: {study.waves_reason} A persona's cue opens with 'It is <year>.'"
        if name == "age":
            caveat += " The last band's upper bound is the oldest respondent's age (the data's top code)."
        if name == "education" and study.dataset == "gss_abortion":
            caveat += " " + study.caveat
        attr["caveat"] = caveat
        attr["categories"] = cats
        attributes[name] = attr

    seed_file = f"seed_{study.name}.parquet"
    missing = ", ".join(f"{c} {counts[f'missing_{c}']:,}" for c in study.attributes if counts[f"missing_{c}"])
    seed_desc = (
        f"{rows_text}. Missing values: rows with a missing seed attribute are dropped (complete cases"
        f"{'; missing: ' + missing if missing else ''}); the target shares are computed over the same rows, "
        "so the seed's margins equal the targets and raking keeps the sample's joint structure as it is."
    )
    if study.external:
        seed_desc += f" {', '.join(study.external)}: not in the data, so independent of the rest."
    spec: dict[str, Any] = {
        "name": study.name,
        "description": study.description,
        "source_note": (
            f"Built by scripts/build_study_specs.py from the human sample itself: {prov['source']}, "
            f"surveys/reference/{study.dataset}.parquet. Study rows: {rows_text}. Each share is the "
            f"attribute's weighted share over the study rows ({weight_text}). These targets are the sample's "
            "composition, not a census."
        ),
        "seed": {"file": seed_file, "joint": "raked", "description": seed_desc, "prior_count": 0.0},
    }
    if "education" in study.attributes:
        spec["derived"] = {"college": us["derived"]["college"]}
    if study.compare is not None:
        spec["compare"] = list(study.compare)
    if study.baseline_cells is not None:
        spec["baseline_cells"] = [list(c) for c in study.baseline_cells]
    spec["attributes"] = attributes
    seed = rows[["respondent_id", *study.attributes, "age_years"]].copy()
    for col in study.attributes:
        seed[col] = seed[col].astype(str)
    seed["age_years"] = seed["age_years"].astype("int64")
    seed_prov = {
        "dataset": study.dataset,
        "reference_file": f"surveys/reference/{study.dataset}.parquet",
        "source": prov["source"],
        "package": prov.get("package"),
        "package_version": prov.get("package_version"),
        "rows_dataset": counts["rows"],
        "rows_answered": counts["answered"],
        "rows_kept": counts["kept"],
        "rows_dropped_missing": counts["dropped_missing"],
        "waves": list(study.waves) if study.waves else None,
        "weights": prov.get("weights", ""),
        "script": "scripts/build_study_specs.py",
    }
    return spec, seed.reset_index(drop=True), seed_prov


def render_yaml(study: Study, spec: dict[str, Any]) -> str:
    """The spec file's text: a header saying how it was built, then the spec."""
    header = (
        f"# {study.title}.\n"
        "# Written by scripts/build_study_specs.py from the human sample itself (do not edit by hand:\n"
        "# change the script and rerun it). Every share is the sample's weighted share over the rows\n"
        "# named in its source, rounded to 4 decimals by largest remainder.\n"
    )
    for key, why in study.left_out.items():
        header += "\n".join(textwrap.wrap(f"Left out: {key}: {why}", 96, initial_indent="# ",
                                           subsequent_indent="#   ")) + "\n"
    body = yaml.dump(spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return header + body


def build_all() -> dict[str, tuple[str, pd.DataFrame, dict]]:
    """Spec text, seed rows and seed provenance of every study."""
    us = yaml.safe_load(US_SPEC.read_text(encoding="utf-8"))
    out = {}
    for study in STUDIES:
        data = pd.read_parquet(BUILTIN[study.dataset].path)
        spec, seed, prov = build_spec(study, data, us)
        out[study.name] = (render_yaml(study, spec), seed, prov)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) every study's spec and seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    built = build_all()
    stale = []
    for name, (text, seed, prov) in built.items():
        spec_path, seed_path = PERSONAS / f"{name}.yaml", PERSONAS / f"seed_{name}.parquet"
        if args.check:
            if not spec_path.is_file() or spec_path.read_text(encoding="utf-8") != text:
                stale.append(str(spec_path))
            if not seed_path.is_file():
                stale.append(str(seed_path))
                continue
            try:
                pd.testing.assert_frame_equal(pd.read_parquet(seed_path), seed, check_dtype=False)
            except AssertionError:
                stale.append(str(seed_path))
            continue
        write_bytes(spec_path, text.encode("utf-8"))
        table = pa.Table.from_pandas(seed, preserve_index=False)
        meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
        meta[b"simsurvey.provenance"] = json.dumps(prov).encode()
        write_table(table.replace_schema_metadata(meta), seed_path, kind="seed_microdata")
        print(f"{name}: {spec_path.relative_to(ROOT)}, {seed_path.relative_to(ROOT)} ({len(seed):,} rows)")
    if args.check:
        print("study specs match a rebuild" if not stale else "stale: " + ", ".join(stale))
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
