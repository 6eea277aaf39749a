"""HTML building blocks for the report: one self-contained page, inline CSS, no scripts.

Every piece of text that comes from data (ids, labels, config values, error messages) goes
through :func:`esc`; only figure markup produced by matplotlib is inserted as is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

CSS = """
:root { --ink:#1b1b1b; --muted:#5f6368; --line:#e3e3e3; --accent:#00798c; --warn:#b3261e; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 2px solid var(--ink); padding-bottom: 4px; }
h3 { font-size: 1.05em; margin-top: 1.8em; }
p.lead { color: var(--muted); margin-top: 0; }
nav { font-size: 0.9em; margin: 12px 0 8px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 0.86em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
figure { margin: 14px 0 22px; }
figure svg.fig, figure img.fig { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.88em; max-width: 820px; margin-top: 4px; }
.note { border-left: 4px solid #edae49; background: #fff8e6; padding: 6px 12px; margin: 8px 0; font-size: 0.9em; }
.bad { color: var(--warn); font-weight: 600; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; font-size: 0.92em; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
pre { background: #f3f3f3; padding: 8px 12px; overflow-x: auto; white-space: pre-wrap; }
"""


def esc(value: Any) -> str:
    """HTML-escape any value's string form (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: fixed decimals, ints as ints, NaN/None as an en dash."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if math.isnan(v):
        return "–"
    if v.is_integer() and not isinstance(value, float):
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def fmt_ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``0.123 [0.100, 0.150]`` (the interval is omitted when absent)."""
    main = fmt_num(value, digits)
    if low is None or high is None:
        return main
    try:
        if math.isnan(float(low)) or math.isnan(float(high)):
            return main
    except (TypeError, ValueError):
        return main
    return f"{main} [{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[bool] | None = None,
          raw: bool = False) -> str:
    """An HTML table. Cells are escaped unless ``raw`` (for pre-formatted, already-escaped cells)."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
            cells.append(f"<td{cls}>{cell if raw else esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def kv(items: Iterable[tuple[str, Any]]) -> str:
    """A definition list of key/value pairs (both escaped)."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def note(text: str) -> str:
    """A highlighted note (escaped)."""
    return f'<p class="note">{esc(text)}</p>'


def para(text: str) -> str:
    """A paragraph (escaped)."""
    return f"<p>{esc(text)}</p>"


def figure(markup: str, caption: str) -> str:
    """A figure: trusted figure markup plus an escaped plain-language caption."""
    return f"<figure>{markup}<figcaption>{esc(caption)}</figcaption></figure>"


def section(anchor: str, title: str, body: str) -> str:
    """A top-level report section with an anchor for the navigation bar."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: title, navigation, sections given as (anchor, title, body)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class=\"lead\">{esc(subtitle)}</p><nav>{nav}</nav>{body}"
        "</main></body></html>\n"
    )
