"""Frames -> integer-coded numpy arrays (the I/O edge of the analyzer).

Everything after this module works on arrays: question index, substantive answer position,
weight, unit (persona / respondent) index, group codes. Answer codes are mapped to their
position among the question's *substantive* codes in canonical (scale) order; ``-1`` marks a
non-substantive or neutral option (reported as a rate, kept out of distributions) and ``-2``
a missing or unknown answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from simsurvey.errors import UserError
from simsurvey.instruments.models import Instrument

NONSUBST = -1
MISSING = -2

#: The responses.parquet columns the analyzer reads (:func:`encode_responses` and
#: :func:`simsurvey.analysis.context.context_effects`): the pipeline reads only these
#: (``read_responses(path, ANALYSIS_COLUMNS)``), leaving out the raw text, errors and costs.
ANALYSIS_COLUMNS: tuple[str, ...] = (
    "persona_id", "question_id", "condition_id", "replicate", "model", "elicitation", "answer_code",
    "answer_value", "valid", "refusal", "option_order", "probs", "arm", "question_position",
    "previous_question", "prompt_hash",
)


@dataclass
class Rows:
    """One side's rows as arrays (all of length n)."""

    q: np.ndarray  #: question index into instrument.questions (int64)
    pos: np.ndarray  #: substantive position, NONSUBST or MISSING (int64)
    w: np.ndarray  #: row weight (float64)
    unit: np.ndarray  #: persona / respondent index (int64, -1 for none)
    groups: dict[str, np.ndarray]  #: var -> code into group_cats[var] (int64, -1 for null)
    valid: np.ndarray  #: bool
    refusal: np.ndarray  #: bool
    x: np.ndarray | None = None  #: (n, K_max) substantive probability mass from `probs`, or None
    has_probs: np.ndarray | None = None  #: bool, row has a non-null probs map
    n_displayed: np.ndarray | None = None  #: number of displayed options (0 = unknown)
    model: np.ndarray | None = None  #: model code per row into model_names (int64, -1 for null)
    condition: np.ndarray | None = None  #: condition code per row into condition_names (int64)
    replicate: np.ndarray | None = None  #: replicate per row (int64)
    code: np.ndarray | None = None  #: answer code index into all codes (-1 = null/unknown)
    notes: list[str] = field(default_factory=list)
    group_cats: dict[str, list[str]] = field(default_factory=dict)  #: var -> sorted values present
    model_names: list[str] = field(default_factory=list)  #: in order of first appearance
    condition_names: list[str] = field(default_factory=list)  #: in order of first appearance
    #: (n, K_max) display rank of each substantive position among the row's displayed substantive
    #: options (0 = shown first), -1 when not displayed or the order is unknown (int8)
    rank: np.ndarray | None = None
    deterministic: np.ndarray | None = None  #: bool, elicitation is ``logprobs`` (a copy answers alike)
    arm: np.ndarray | None = None  #: survey-experiment arm code per row into arm_names (int64, -1 = none)
    arm_names: list[str] = field(default_factory=list)  #: arm ids, in order of first appearance
    value: np.ndarray | None = None  #: ``answer_value`` (float64, NaN = none): a numeric answer's raw value
    #: the raw ``answer_code`` per row (object, None for null): multi_select sets (``"a|c"``) have no position
    answer: np.ndarray | None = None


def _all_codes(instrument: Instrument) -> list[str]:
    return sorted({c for q in instrument.questions for c in q.codes})


def _position_lut(instrument: Instrument, codes: list[str]) -> np.ndarray:
    """(Q, C) table: substantive position of code c in question q, else NONSUBST or MISSING."""
    lut = np.full((len(instrument.questions), len(codes)), MISSING, dtype=np.int64)
    index = {c: i for i, c in enumerate(codes)}
    for qi, q in enumerate(instrument.questions):
        for c in q.codes:
            lut[qi, index[c]] = NONSUBST
        for k, c in enumerate(q.substantive_codes):
            lut[qi, index[c]] = k
    return lut


def k_max(instrument: Instrument) -> int:
    """The largest number of substantive options of any question."""
    return max((len(q.substantive_codes) for q in instrument.questions), default=0)


def _positions(qidx: np.ndarray, codes_idx: np.ndarray, lut: np.ndarray) -> np.ndarray:
    ok = (qidx >= 0) & (codes_idx >= 0)
    out = np.full(len(qidx), MISSING, dtype=np.int64)
    out[ok] = lut[qidx[ok], codes_idx[ok]]
    return out


def codes_in(values: pd.Series | np.ndarray, categories: list[str]) -> np.ndarray:
    """Index of each value in ``categories`` (-1 for null or absent), as int64.

    Factorizes first (arrow-backed strings factorize without Python objects), so the lookup runs
    once per distinct value instead of once per row.
    """
    codes, uniques = pd.factorize(values)
    index = {c: i for i, c in enumerate(categories)}
    lut = np.array([index.get(u, -1) if isinstance(u, str) else -1 for u in uniques] + [-1], dtype=np.int64)
    # factorize marks nulls with -1, which picks the trailing -1 of the table.
    return lut[codes]


def factorize_str(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes (int64, -1 for null) and the distinct values as strings, in order of first appearance."""
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _group_codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes into the sorted distinct non-null string values."""
    codes, uniques = factorize_str(values)
    cats = sorted(uniques)
    lut = np.array([cats.index(u) for u in uniques] + [-1], dtype=np.int64)
    return lut[codes], cats


def _present(codes: np.ndarray, cats: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop categories no row uses, renumbering the codes (order kept)."""
    used = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0
    if used.all():
        return codes, cats
    lut = np.append(np.cumsum(used) - 1, -1)
    return lut[codes], [c for c, u in zip(cats, used) if u]


def _bool(s: pd.Series) -> np.ndarray:
    return s.astype("boolean").fillna(False).to_numpy(dtype=bool)


def group_values(frame: pd.DataFrame, var: str) -> tuple[np.ndarray, list[str]] | None:
    """Codes (-1 for null) into the sorted string values of a demographic column (derived
    variables are filled where the population's data are made); None when the column is absent
    or all null."""
    col = frame[var] if var in frame.columns else None
    if col is None or col.isna().all():
        return None
    if not (pd.api.types.is_string_dtype(col.dtype) or col.dtype == object):
        col = col.astype(object).map(lambda v: None if pd.isna(v) else str(v))
    return _group_codes(col)


def _arrow_codes(strings: pa.Array, categories: list[str]) -> np.ndarray:
    """Index of each arrow string in ``categories`` (-1 null/absent), via dictionary encoding so
    no Python string object is made per element."""
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64)
    enc = strings.dictionary_encode()
    index = {c: i for i, c in enumerate(categories)}
    lut = np.array([index.get(v, -1) for v in enc.dictionary.to_pylist()] + [-1], dtype=np.int64)
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return lut[idx]


def _struct_to_map(arr: pa.StructArray) -> pa.MapArray:
    """A struct of one float field per code (how parquet stores dicts written without a schema)
    as a map of the same entries; a null field becomes a null value (no mass), a null row a null map."""
    names = [arr.type.field(i).name for i in range(arr.type.num_fields)]
    n, f = len(arr), len(names)
    fields = [np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64) for c in arr.flatten()]
    vals = np.column_stack(fields).ravel() if f else np.zeros(0)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * f, pa.int32())
    return pa.MapArray.from_arrays(offsets, pa.array(np.tile(np.array(names, dtype=object), n), pa.string()),
                                   pa.array(vals, pa.float64()), mask=arr.is_null())


def _arrow_list(col: pd.Series, typ: pa.DataType) -> pa.Array:
    """The column as one arrow array of ``typ`` (zero-copy when it is already arrow-backed)."""
    if isinstance(col.dtype, pd.ArrowDtype):
        # As read_responses gives it: never through Python objects (a map whose fields are named
        # otherwise, or with integer values, is cast by arrow).
        arr = pa.array(col.array)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if pa.types.is_struct(arr.type) and pa.types.is_map(typ):
            arr = _struct_to_map(arr)
        return arr if arr.type == typ else arr.cast(typ)
    try:
        arr = pa.array(col.array, type=typ) if hasattr(col.array, "__arrow_array__") else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        arr = None
    if arr is None:
        arr = pa.array(col.astype(object).to_numpy(), type=typ, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def probs_entries(col: pd.Series) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """The entries of a `probs` column (arrow-backed maps as :func:`simsurvey.io.read_responses`
    gives them, dicts, or lists of (key, value) pairs as pandas reads a parquet map), flattened
    with arrow, without a Python loop over rows.

    Returns:
        (keys, values, row_of, has): one key (arrow strings) and value per map entry, a
        non-finite or non-positive value as 0.0, the row of each entry, and whether each row has
        a (non-null) map.
    """
    n = len(col)
    arr = _arrow_list(col, pa.map_(pa.string(), pa.float64()))
    has = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
    start = offsets[0]
    keys = arr.keys.slice(start, offsets[-1] - start)
    vals = np.asarray(arr.items.slice(start, offsets[-1] - start).to_numpy(zero_copy_only=False), dtype=np.float64)
    vals = np.where(np.isfinite(vals) & (vals > 0), vals, 0.0)
    return keys, vals, np.repeat(np.arange(n), np.diff(offsets)), has


def option_mass(col: pd.Series, options: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) mass each row's `probs` map puts on each of ``options`` (mass on other codes is
    dropped, a missing map gives zeros), and whether each row has a map."""
    keys, vals, row_of, has = probs_entries(col)
    k = len(options)
    kcode = _arrow_codes(keys, list(options))
    m = kcode >= 0
    x = np.bincount(row_of[m] * k + kcode[m], weights=vals[m], minlength=len(col) * k)
    return x.reshape(len(col), k), has


def _map_probs(col: pd.Series, qidx: np.ndarray, codes: list[str], lut: np.ndarray,
               kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The `probs` column as (x, has_probs): x[i, k] is the mass on substantive position k."""
    n = len(col)
    keys, vals, row_of, has = probs_entries(col)
    pos = _positions(qidx[row_of], _arrow_codes(keys, codes), lut)
    m = pos >= 0
    x = np.bincount(row_of[m] * kmax + pos[m], weights=vals[m], minlength=n * max(kmax, 1))
    return x.reshape(n, max(kmax, 1))[:, :kmax], has


def _displayed(col: pd.Series, codes: list[str], qidx: np.ndarray, lut: np.ndarray,
               kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Number of displayed options and the (n, kmax) display rank of each substantive position
    among the row's displayed substantive options (-1: not displayed)."""
    n = len(col)
    arr = _arrow_list(col, pa.list_(pa.string()))
    offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
    flat = _arrow_codes(arr.flatten(), codes)
    k = np.diff(offsets)
    row_of = np.repeat(np.arange(n), k)
    pos = _positions(qidx[row_of], flat, lut)
    subst = pos >= 0
    # Rank among the row's substantive options: a running count that restarts at each row.
    run = np.cumsum(subst)
    before = np.concatenate([[0], run])[offsets[:-1] - offsets[0]]
    rank = np.full((n, max(kmax, 1)), -1, dtype=np.int8)
    rank[row_of[subst], pos[subst]] = (run - 1 - before[row_of])[subst]
    return k, rank[:, :kmax]


def encode_responses(responses: pd.DataFrame, personas: pd.DataFrame, instrument: Instrument,
                     group_vars: list[str]) -> Rows:
    """Encode responses (joined to personas on persona_id) for analysis.

    Raises:
        UserError: a required column is missing, or persona_ids are absent from personas.
    """
    for col in ("persona_id", "question_id", "condition_id", "model", "answer_code", "valid"):
        if col not in responses.columns:
            raise UserError(f"responses: missing column '{col}'")
    codes = _all_codes(instrument)
    lut = _position_lut(instrument, codes)
    n = len(responses)
    qids = [q.id for q in instrument.questions]
    qidx = codes_in(responses["question_id"], qids)
    cidx = codes_in(responses["answer_code"], codes)
    notes = []
    unknown_q = int((qidx < 0).sum())
    if unknown_q:
        notes.append(f"{unknown_q} response rows have a question_id not in the instrument: ignored")

    pid = responses["persona_id"].astype("Int64")
    pmask = pid.notna().to_numpy()
    pindex = pd.Index(personas["persona_id"].astype("int64"))
    unit = np.full(n, -1, dtype=np.int64)
    unit[pmask] = pindex.get_indexer(pid.to_numpy(dtype="int64", na_value=-1)[pmask])
    missing = pmask & (unit < 0)
    if missing.any():
        example = int(pid[missing].iloc[0])
        raise UserError(f"responses: {int(missing.sum())} rows have a persona_id not in personas "
                        f"(e.g. {example})")
    pw = personas["weight"].to_numpy(dtype=np.float64) if "weight" in personas.columns \
        else np.ones(len(personas))
    w = np.where(unit >= 0, pw[np.maximum(unit, 0)], 1.0)
    groups, group_cats = {}, {}
    for var in group_vars:
        coded = group_values(personas, var)
        if coded is not None:
            # Coded once per persona, then gathered per row (no per-row string work).
            g = np.where(unit >= 0, coded[0][np.maximum(unit, 0)], -1)
            groups[var], group_cats[var] = _present(g, coded[1])
    model_codes, model_names = factorize_str(responses["model"])
    cond_codes, cond_names = factorize_str(responses["condition_id"])
    rows = Rows(
        q=qidx, pos=_positions(qidx, cidx, lut), w=w, unit=unit, groups=groups,
        valid=_bool(responses["valid"]),
        refusal=_bool(responses["refusal"]) if "refusal" in responses.columns else np.zeros(n, bool),
        model=model_codes, condition=cond_codes, model_names=model_names,
        condition_names=cond_names, group_cats=group_cats,
        replicate=(responses["replicate"].astype("Int64").fillna(0).to_numpy(dtype=np.int64)
                   if "replicate" in responses.columns else np.zeros(n, np.int64)),
        code=cidx, notes=notes,
    )
    if "option_order" in responses.columns:
        rows.n_displayed, rows.rank = _displayed(responses["option_order"], codes, qidx, lut, k_max(instrument))
    else:
        rows.n_displayed = np.zeros(n, dtype=np.int64)
        rows.rank = np.full((n, k_max(instrument)), -1, dtype=np.int8)
    rows.answer = responses["answer_code"].astype(object).where(responses["answer_code"].notna(), None).to_numpy()
    rows.deterministic = (responses["elicitation"].astype(object).to_numpy() == "logprobs"
                          if "elicitation" in responses.columns else np.zeros(n, bool))
    if "probs" in responses.columns and responses["probs"].notna().any():
        rows.x, rows.has_probs = _map_probs(responses["probs"], qidx, codes, lut, k_max(instrument))
    return add_experiment_columns(rows, responses)


def encode_reference(reference: pd.DataFrame, instrument: Instrument, group_vars: list[str],
                     source: str | None) -> tuple[Rows, dict[str, str]]:
    """Encode human reference rows, one source per question.

    The source of a question is ``source`` when given, else the first source in reference
    order among rows with that question_id. Returns the rows and question_id -> source used.

    Raises:
        UserError: a required column is missing, or ``source`` is not in the reference data.
    """
    for col in ("question_id", "answer_code", "respondent_id"):
        if col not in reference.columns:
            raise UserError(f"reference: missing column '{col}'")
    ref = reference
    src = ref["source"].astype(object).to_numpy() if "source" in ref.columns else np.full(len(ref), "reference", object)
    if source is not None and not (src == source).any():
        have = sorted({str(s) for s in src})
        raise UserError(f"analysis.reference_source: '{source}' not in reference sources {have}")
    qcol = ref["question_id"].astype(object).to_numpy()
    if source is None:
        firsts = pd.DataFrame({"q": qcol, "s": src}).drop_duplicates("q")
        chosen = dict(zip(firsts["q"], firsts["s"]))
    else:
        chosen = {q: source for q in pd.unique(qcol[src == source])}
    keep = pd.Series(qcol).map(chosen).to_numpy(dtype=object) == src
    ref = ref.loc[keep]
    codes = _all_codes(instrument)
    lut = _position_lut(instrument, codes)
    qids = [q.id for q in instrument.questions]
    qidx = codes_in(ref["question_id"], qids)
    cidx = codes_in(ref["answer_code"], codes)
    w = ref["weight"].to_numpy(dtype=np.float64, na_value=np.nan) if "weight" in ref.columns else np.ones(len(ref))
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    # A respondent is (source, respondent_id); numbered in order of first appearance.
    rid = pd.factorize(ref["respondent_id"].astype(str))[0].astype(np.int64)
    sid = pd.factorize(ref["source"].astype(str))[0].astype(np.int64) if "source" in ref.columns \
        else np.zeros(len(ref), np.int64)
    unit = pd.factorize(sid * (int(rid.max()) + 1 if len(rid) else 1) + rid)[0].astype(np.int64)
    groups, group_cats = {}, {}
    for var in group_vars:
        coded = group_values(ref, var)
        if coded is not None:
            groups[var], group_cats[var] = _present(*coded)
    n = len(ref)
    rows = Rows(q=qidx, pos=_positions(qidx, cidx, lut), w=w, unit=unit, groups=groups,
                valid=np.ones(n, bool), refusal=np.zeros(n, bool), code=cidx, group_cats=group_cats,
                answer=ref["answer_code"].astype(object).where(ref["answer_code"].notna(), None).to_numpy())
    return add_experiment_columns(rows, ref), {str(k): str(v) for k, v in chosen.items()}


def add_experiment_columns(rows: Rows, frame: pd.DataFrame) -> Rows:
    """Set ``rows.arm`` / ``arm_names`` / ``value`` from a frame row-aligned with ``rows`` (its
    ``arm`` and ``answer_value`` columns; absent columns leave them None)."""
    if "arm" in frame.columns:
        rows.arm, rows.arm_names = factorize_str(frame["arm"])
    if "answer_value" in frame.columns:
        rows.value = pd.to_numeric(frame["answer_value"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return rows


def onehot(pos: np.ndarray, k: int) -> np.ndarray:
    """(n, K) one-hot rows of substantive positions (all must be >= 0)."""
    x = np.zeros((len(pos), k))
    x[np.arange(len(pos)), pos] = 1.0
    return x


def answer_vectors(rows: Rows, idx: np.ndarray, k: int, use_probs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Which of rows ``idx`` enter a distribution, and their normalized (n, K) answer vectors.

    With ``use_probs`` a row enters when it has a probs map with mass on substantive options (the
    vector is that mass renormalized); otherwise when it is valid, not a refusal and answered a
    substantive option (a one-hot vector).
    """
    if use_probs and rows.x is not None and rows.has_probs is not None:
        x = rows.x[idx, :k]
        s = x.sum(1)
        ok = rows.has_probs[idx] & (s > 0)
        return ok, x[ok] / s[ok, None]
    pos = rows.pos[idx]
    ok = rows.valid[idx] & ~rows.refusal[idx] & (pos >= 0)
    return ok, onehot(pos[ok], k)
