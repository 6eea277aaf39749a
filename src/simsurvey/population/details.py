"""Faker details for personas, vectorized: names, single-year ages, states, cities, occupations.

Faker is called a few thousand times to build pools from a seeded instance (``seed_instance``,
never the class-level ``Faker.seed``, which is global state); the N personas then index the pools
with numpy. Faker's generated values change between releases, hence the pin in pyproject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from simsurvey.errors import UserError

#: Pool size per kind; large enough that names rarely repeat in a few thousand personas.
POOL = 2000


def faker_pools(seed: int, size: int = POOL, locale: str = "en_US") -> dict[str, np.ndarray]:
    """Pools of female/male first names, last names, cities and jobs from a seeded Faker of
    ``locale`` (the population spec's)."""
    from faker import Faker

    try:
        fake = Faker(locale)
    except AttributeError:
        raise UserError(f"locale: {locale!r} is not a Faker locale (e.g. en_US, no_NO, de_DE)") from None
    fake.seed_instance(seed)
    return {
        "first_female": pa.array([fake.first_name_female() for _ in range(size)], type=pa.large_string()),
        "first_male": pa.array([fake.first_name_male() for _ in range(size)], type=pa.large_string()),
        "last": pa.array([fake.last_name() for _ in range(size)], type=pa.large_string()),
        "city": pa.array([fake.city() for _ in range(size)], type=pa.large_string()),
        "job": pa.array([fake.job() for _ in range(size)], type=pa.large_string()),
    }


def draw_names(sex: np.ndarray, pools: dict[str, pa.Array], rng: np.random.Generator) -> pa.Array:
    """'First Last' names whose first name matches ``sex`` ('female'/'male')."""
    n = len(sex)
    fem = np.asarray(sex) == "female"
    i = rng.integers(0, len(pools["first_female"]), n)
    # One pool of both sexes' first names; males index its second half.
    firsts = pa.concat_arrays([pools["first_female"], pools["first_male"]])
    first = firsts.take(pa.array(np.where(fem, i, len(pools["first_female"]) + i % len(pools["first_male"]))))
    last = pools["last"].take(pa.array(rng.integers(0, len(pools["last"]), n)))
    return pc.binary_join_element_wise(first, last, pa.scalar(" ", pa.large_string()))


def draw_ages(
    band: np.ndarray, bounds: dict[str, tuple[int, int]], rng: np.random.Generator,
    seed_ages: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Single-year ages within each persona's band.

    Drawn from the seed's single-year ages in that band (clipped to the band bounds) when given,
    else uniformly over the band's years.
    """
    band = np.asarray(band)
    out = np.empty(len(band), dtype=np.int64)
    for code, (lo, hi) in bounds.items():
        rows = np.flatnonzero(band == code)
        if not rows.size:
            continue
        pool = None if seed_ages is None else seed_ages.get(code)
        if pool is not None:
            pool = pool[(pool >= lo) & (pool <= hi)]
        if pool is not None and pool.size:
            out[rows] = pool[rng.integers(0, pool.size, rows.size)]
        else:
            out[rows] = rng.integers(lo, hi + 1, rows.size)
    return out


def load_states(path: Path, regions: list[str], *, where: str) -> pd.DataFrame:
    """Read a states CSV (state, state_code, region, adults_18plus) and check its regions."""
    if not path.is_file():
        raise UserError(f"{where}: file not found: {path}")
    df = pd.read_csv(path, comment="#")
    need = {"state", "state_code", "region", "adults_18plus"}
    if need - set(df.columns):
        raise UserError(f"{where}: {path.name} lacks column {sorted(need - set(df.columns))[0]!r}")
    missing = set(regions) - set(df["region"])
    if missing:
        raise UserError(f"{where}: {path.name} has no state in region {sorted(missing)[0]!r}")
    return df


def draw_states(region: np.ndarray, states: pd.DataFrame, rng: np.random.Generator) -> tuple[pa.Array, pa.Array]:
    """A state per persona, drawn by adult population within the persona's region.

    Returns:
        (state codes, state names).
    """
    region = np.asarray(region)
    idx = np.empty(len(region), dtype=np.int64)
    for reg, grp in states.groupby("region", sort=True):
        rows = np.flatnonzero(region == reg)
        if rows.size:
            w = grp["adults_18plus"].to_numpy(dtype=np.float64)
            idx[rows] = grp.index.to_numpy()[rng.choice(len(grp), rows.size, p=w / w.sum())]
    take = pa.array(idx)
    return (pa.array(states["state_code"].astype(str).tolist(), type=pa.large_string()).take(take),
            pa.array(states["state"].astype(str).tolist(), type=pa.large_string()).take(take))


def draw_pool(pool: pa.Array, n: int, rng: np.random.Generator) -> pa.Array:
    """``n`` values drawn uniformly with replacement from a pool."""
    return pool.take(pa.array(rng.integers(0, len(pool), n)))
