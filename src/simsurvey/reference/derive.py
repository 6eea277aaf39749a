"""Values a user's mapping computes from the data file: expressions, tables and ranges.

A mapping entry reads one ``column``, or computes its value from several:

- ``expression: "2016 - birthyr"``: arithmetic over the file's numeric columns (``+ - * / // % **``,
  comparisons, ``and`` / ``or`` / ``not``, parentheses, numbers, and the conditional
  ``where(condition, if_true, if_false)``), evaluated with :meth:`pandas.DataFrame.eval` after the
  expression was parsed with :mod:`ast` and every node checked against that list;
- ``columns: [race, hispanic]`` with a ``table`` whose first matching row gives the code
  (``*`` matches any non-missing value; a list matches any of its values);
- ``ranges: {under_50k: [0, 49999], ...}``: a number -> the code whose inclusive bounds hold it
  (``null`` for an open end).

``missing`` lists values of the columns read: a respondent with such a value (or an empty cell)
in any of them is missing, unless a table row matched them first.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from simsurvey.errors import UserError
from simsurvey.reference.codes import value_keys

#: The conditional an expression may call: where(condition, if_true, if_false).
WHERE = "where"
#: Matches any non-missing value in a table row.
ANY = "*"

_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Name, ast.Load, ast.Constant,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Not,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.And, ast.Or,
)


def _token(node: ast.AST, text: str) -> str:
    return ast.get_source_segment(text, node) or type(node).__name__


def parse_expression(text: str, *, what: str) -> tuple[ast.Expression, tuple[str, ...]]:
    """Parse and check an expression; returns its tree and the column names it reads, in order.

    Raises:
        UserError: a syntax error, or a token outside the allowed set (one line naming ``what``
            and the offending token).
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise UserError(f"{what}: expression '{text}' is not valid: {err.msg}") from None
    names: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id == WHERE and len(node.args) == 3
                    and not node.keywords):
                raise UserError(f"{what}: expression '{text}': '{_token(node, text)}' is not allowed"
                                f" (the only call is {WHERE}(condition, if_true, if_false))")
            continue
        if not isinstance(node, _ALLOWED):
            raise UserError(f"{what}: expression '{text}': '{_token(node, text)}' is not allowed"
                            " (only column names, numbers, arithmetic, comparisons, and/or/not and where())")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
            raise UserError(f"{what}: expression '{text}': '{_token(node, text)}' is not allowed (only numbers)")
        if isinstance(node, ast.Name):
            names.setdefault(node.id, None)
    # The callee `where` is a Name node too, not a column.
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    cols = tuple(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls)
    return tree, tuple(dict.fromkeys(c for c in names if c in cols))


def _eval_plain(node: ast.AST, frame: pd.DataFrame) -> np.ndarray:
    out = frame.eval(ast.unparse(node), engine="python")
    return np.broadcast_to(np.asarray(out, dtype="float64"), (len(frame),))


def _evaluate(tree: ast.Expression, frame: pd.DataFrame) -> pd.Series:
    """Evaluate a checked tree with pandas' eval; each where() (innermost first) becomes a
    column of its value (np.where), since pandas' eval has no conditional."""
    work = frame.copy()

    class _Swap(ast.NodeTransformer):
        def visit_Call(self, call: ast.Call) -> ast.AST:
            self.generic_visit(call)
            cond, yes, no = (_eval_plain(a, work) for a in call.args)
            name = f"where_{len(work.columns)}_"
            work[name] = np.where(cond.astype(bool), yes, no)
            return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), call)

    body = _Swap().visit(ast.parse(ast.unparse(tree), mode="eval")).body
    return pd.Series(_eval_plain(ast.fix_missing_locations(body), work), index=frame.index)


def evaluate_expression(raw: pd.DataFrame, text: str, missing: Sequence[str], *,
                        what: str) -> tuple[pd.Series, pd.Series]:
    """Evaluate a mapping's ``expression`` over the data file.

    Args:
        raw: The data file.
        text: The expression.
        missing: Values of the columns read that mean "no answer".
        what: Names the mapping key in errors.

    Returns:
        (the value per respondent, NaN where missing; boolean mask of missing respondents: an
        empty cell or a ``missing`` value in any column read).

    Raises:
        UserError: a disallowed token, an unknown column, a non-numeric value that is not
            missing, or a non-finite result (division by zero) for a respondent with no missing value.
    """
    tree, names = parse_expression(text, what=what)
    frame = pd.DataFrame(index=raw.index)
    miss = pd.Series(False, index=raw.index)
    for col in names:
        if col not in raw.columns:
            raise UserError(f"{what}: expression '{text}': column '{col}' is not in the data file")
        keys = value_keys(raw[col])
        m = keys.isna() | keys.isin(list(missing))
        num = pd.to_numeric(raw[col].where(~m.to_numpy()), errors="coerce").astype("float64")
        bad = ~m & num.isna()
        if bad.any():
            raise UserError(f"{what}: expression '{text}': column '{col}' value '{keys[bad].iloc[0]}' is not a"
                            " number; add it to missing")
        frame[col] = num
        miss |= m
    with np.errstate(all="ignore"):
        value = _evaluate(tree, frame)
    value = value.where(~miss)
    bad = ~miss & ~np.isfinite(value.to_numpy(dtype="float64", na_value=np.nan))
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        shown = ", ".join(f"{c}={value_keys(raw[c]).iloc[i]}" for c in names)
        raise UserError(f"{what}: expression '{text}' gives no number for a respondent with {shown}")
    return value, miss


def table_codes(raw: pd.DataFrame, columns: Sequence[str], table: Sequence[Mapping[str, object]],
                missing: Sequence[str], *, what: str) -> tuple[pd.Series, pd.Series]:
    """Codes from a ``table`` over several columns: the first matching row wins.

    A row names a value (or a list of values, or ``*`` for any non-missing value) for every
    column, and its ``code``. A respondent no row matches is missing when one of its values is
    empty or listed in ``missing``, and an error otherwise.

    Returns:
        (code per respondent, None where missing; boolean mask of missing respondents).

    Raises:
        UserError: a column not in the file; a respondent no row matches, naming its values.
    """
    keys: dict[str, pd.Series] = {}
    for col in columns:
        if col not in raw.columns:
            raise UserError(f"{what}: column '{col}' is not in the data file")
        keys[col] = value_keys(raw[col])
    absent = pd.Series(False, index=raw.index)
    for col in columns:
        absent |= keys[col].isna() | keys[col].isin(list(missing))
    out = pd.Series(None, index=raw.index, dtype=object)
    for row in table:
        hit = out.isna()
        for col in columns:
            want = row[col]
            if want == ANY:
                hit &= keys[col].notna() & ~keys[col].isin(list(missing))
            else:
                hit &= keys[col].isin(list(want) if isinstance(want, (list, tuple)) else [want])
        out[hit] = row["code"]
    unmatched = out.isna() & ~absent
    if unmatched.any():
        i = unmatched.to_numpy().nonzero()[0][0]
        shown = ", ".join(f"{c}={keys[c].iloc[i]}" for c in columns)
        raise UserError(f"{what}: no table row matches {shown}; add a row for it, or its value to missing")
    return out, out.isna()


def range_codes(values: pd.Series, keys: pd.Series, is_missing: pd.Series,
                ranges: Mapping[str, tuple[float | None, float | None]], codes: Mapping[str, str], *,
                what: str) -> pd.Series:
    """Numbers -> the code whose inclusive ``ranges`` bounds hold them (``codes`` first: an exact
    value mapped there, e.g. a special value, is not looked up in the ranges).

    Raises:
        UserError: a value that is not missing, not in ``codes`` and in no range (or not a number).
    """
    exact = keys.map(dict(codes))
    num = pd.to_numeric(values.where(~is_missing.to_numpy()), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    out = pd.Series(None, index=values.index, dtype=object)
    for code, (lo, hi) in ranges.items():
        inside = np.ones(num.shape, dtype=bool) & ~np.isnan(num)
        if lo is not None:
            inside &= num >= lo
        if hi is not None:
            inside &= num <= hi
        out[inside] = code
    out = exact.where(exact.notna(), out).where(~is_missing, None)
    bad = ~is_missing & out.isna()
    if bad.any():
        shown = ", ".join(f"{c}: [{_bound(lo)}, {_bound(hi)}]" for c, (lo, hi) in ranges.items())
        raise UserError(f"{what} value '{keys[bad].iloc[0]}' is in no range ({shown}); add a range for it,"
                        " or the value to missing")
    return out


def _bound(x: float | None) -> str:
    return "null" if x is None else f"{x:g}"
