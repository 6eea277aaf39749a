"""The population stage: spec -> fitted joint -> exactly N personas with details and cues.

1. Load the spec; build the seed table (or a flat one for independence) and rake it onto the
   targets (:func:`~simsurvey.population.ipf.ipf`).
2. Allot N personas to cells with exact marginal counts (:func:`integerize`), expand, shuffle.
3. Add derived attributes, Faker details and the cue text.
Every random step draws from its own stream derived from the run seed, so changing one step
(e.g. the cue style) does not reshuffle the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from simsurvey.errors import UserError
from simsurvey.paths import resolve_path
from simsurvey.population.config import PopulationConfig
from simsurvey.population.cues import CUE_STYLES, as_str_series, render_cues
from simsurvey.population.details import draw_ages, draw_names, draw_pool, draw_states, faker_pools, load_states
from simsurvey.population.integerize import integerize
from simsurvey.population.ipf import ipf, marginals
from simsurvey.population.seed import read_seed, seed_table
from simsurvey.population.spec import PopulationSpec, load_population_spec
from simsurvey.population.variables import Variables

# Stream ids: np.random.default_rng([seed, STREAM]) gives independent streams per step.
_SHUFFLE, _AGES, _STATES, _NAMES, _CITY, _JOB, _FAKER = range(7)


@dataclass(frozen=True)
class PersonaSample:
    """The sampled personas and the diagnostics for the run manifest.

    Attributes:
        frame: One row per persona, the ``personas.parquet`` columns.
        diagnostics: JSON-serializable summary (spec, seed provenance, joint mode, IPF
            convergence, target vs sample shares, assumptions).
        variables: The population's variables (written into personas.parquet's metadata).
    """

    frame: pd.DataFrame
    diagnostics: dict[str, Any]
    variables: Variables | None = None


def fit_joint(spec: PopulationSpec, *, joint: str, tol: float, max_iter: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The fitted joint distribution (shares, one axis per attribute) and its diagnostics."""
    names = list(spec.attributes)
    codes = [a.codes for a in spec.attributes.values()]
    diag: dict[str, Any] = {"joint": joint}
    if joint == "raked":
        df, provenance = read_seed(spec)
        st = seed_table(spec, df, provenance)
        table = st.table + spec.seed.prior_count
        diag.update({
            "seed_file": provenance.get("file"),
            "seed_provenance": provenance,
            "seed_rows": st.rows,
            "seed_prior_count": spec.seed.prior_count,
            "seed_zero_cells": int((table == 0).sum()),
            "cells": int(table.size),
            "attribute_handling": st.handling,
            "assumptions": {k: e.assumption for k, e in spec.seed.expand.items()},
        })
        ages = st.ages
    else:
        table = np.ones([len(c) for c in codes])
        diag["note"] = "independent margins: the joint is the product of the target shares (no seed structure)"
        ages = {}
    margins = spec.margins
    try:
        res = ipf(table, margins, tol=tol, max_iter=max_iter, names=names, codes=codes)
    except UserError as err:
        raise UserError(f"{spec.path}: {err}") from None
    diag.update({"ipf_iterations": res.iterations, "ipf_converged": res.converged,
                 "ipf_max_marginal_error": res.max_error, "ipf_tol": tol})
    return res.table, {**diag, "_ages": ages}


def _take(values: list[str], idx: np.ndarray) -> pa.Array:
    """Per-persona strings gathered from a small list by index (arrow, no Python objects)."""
    return pa.array(values, type=pa.large_string()).take(pa.array(idx))


def _shares(counts: np.ndarray, codes: list[str]) -> dict[str, float]:
    return {c: round(float(v), 8) for c, v in zip(codes, counts / counts.sum())}


def sample_personas(cfg: PopulationConfig, *, seed: int, cue_style: str) -> PersonaSample:
    """Sample ``cfg.n`` personas from the population spec.

    Args:
        cfg: The ``population:`` config section.
        seed: Master seed; the same seed, spec and n give the same personas byte for byte.
        cue_style: ``attributes``, ``backstory`` or ``name`` (the text in the ``cue`` column).

    Returns:
        The personas frame and the manifest diagnostics.

    Raises:
        UserError: a missing or invalid spec, seed or states file, unreachable targets, IPF not
            converging, or an unknown cue style (one line each).
    """
    if cue_style not in CUE_STYLES:
        raise UserError(f"design.cue: unknown cue style {cue_style!r} (expected one of {', '.join(CUE_STYLES)})")
    spec = load_population_spec(resolve_path(cfg.spec, key="population.spec"))
    joint = spec.seed.joint if cfg.joint == "spec" else cfg.joint
    if joint == "raked" and spec.seed.file is None:
        joint = "independent"
    table, diag = fit_joint(spec, joint=joint, tol=cfg.ipf_tol, max_iter=cfg.ipf_max_iter)
    seed_ages = diag.pop("_ages")
    names = list(spec.attributes)
    codes = [a.codes for a in spec.attributes.values()]

    counts = integerize(table, cfg.n, margins=spec.margins)
    cells = np.repeat(np.arange(counts.size), counts.ravel())
    cells = np.random.default_rng([seed, _SHUFFLE]).permutation(cells)
    cat_idx = np.unravel_index(cells, counts.shape)

    cols: dict[str, Any] = {"persona_id": np.arange(cfg.n, dtype=np.int64), "weight": np.ones(cfg.n)}
    for name, code_list, ix in zip(names, codes, cat_idx):
        cols[name] = _take(code_list, ix)
        for dname, der in spec.derived.items():
            if der.from_ == name:
                cols[dname] = _take([der.map[c] for c in code_list], ix)
    bounds = {c.code: c.years for c in spec.attributes["age"].categories}
    age_codes = np.asarray(codes[names.index("age")], dtype=object)[cat_idx[names.index("age")]]
    cols["age_years"] = draw_ages(age_codes, bounds, np.random.default_rng([seed, _AGES]), seed_ages)
    pools = faker_pools(int(np.random.default_rng([seed, _FAKER]).integers(2**31)), cfg.faker_pool, spec.locale)
    sex_codes = np.asarray(codes[names.index("sex")], dtype=object)[cat_idx[names.index("sex")]]
    cols["name"] = draw_names(sex_codes, pools, np.random.default_rng([seed, _NAMES]))
    state_names = None
    if spec.states_file is not None:
        states = load_states(spec.resolve(spec.states_file), spec.attributes["region"].codes, where=f"{spec.path}: states_file")
        ridx = cat_idx[names.index("region")]
        region_codes = np.asarray(codes[names.index("region")], dtype=object)[ridx]
        cols["state"], state_names = draw_states(region_codes, states, np.random.default_rng([seed, _STATES]))
    cols["city"] = draw_pool(pools["city"], cfg.n, np.random.default_rng([seed, _CITY]))
    cols["occupation"] = draw_pool(pools["job"], cfg.n, np.random.default_rng([seed, _JOB]))
    frame = pd.DataFrame({k: (as_str_series(v) if isinstance(v, pa.Array) else v) for k, v in cols.items()})
    cue_input = frame if state_names is None else frame.assign(state_name=as_str_series(state_names))
    frame["cue"] = render_cues(cue_input, spec, cue_style)

    sample_margins = marginals(counts.astype(np.float64))
    err = max(float(np.abs(m / cfg.n - t).max()) for m, t in zip(sample_margins, spec.margins))
    diag.update({
        "spec": str(spec.path),
        "spec_name": spec.name,
        "n": cfg.n,
        "seed": seed,
        "cue_style": cue_style,
        "weights": "1.0 each: the sample is self-weighting (exact marginal counts)",
        "max_sample_marginal_error": err,
        "sample_within_1_over_n": bool(err < 1.0 / cfg.n + 1e-12),
        "marginals": {
            name: {"target": dict(zip(code_list, map(float, attr.shares))), "sample": _shares(m, code_list)}
            for (name, attr), code_list, m in zip(spec.attributes.items(), codes, sample_margins)
        },
        "caveats": {k: a.caveat for k, a in spec.attributes.items() if a.caveat},
        "faker": {"locale": spec.locale, "pool": cfg.faker_pool},
    })
    return PersonaSample(frame=frame, diagnostics=diag, variables=spec.variables)
