"""``simsurvey check`` (``stages=[check]``): what a run would do, before it calls any model.

The first thing a user with their own data runs: the instrument, the mapping of each question
onto the human data, the population and its targets, and the personas' composition beside each
human source's with the coverage verdict (see :mod:`simsurvey.population.composition`). Inputs are
loaded and validated exactly as a run loads them and the personas are drawn (cheap); no model is
called and nothing is written.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from simsurvey.population.composition import Composition, Coverage, format_composition


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def check_summary(*, instrument: Any, provenance: dict[str, Any], population: dict[str, Any],
                  sample_diag: dict[str, Any], comp: Composition, verdict: Coverage) -> str:
    """The text ``simsurvey check`` prints.

    Args:
        instrument: The loaded instrument.
        provenance: :func:`~simsurvey.reference.reference_provenance` with the instrument.
        population: The ``population`` config (``spec``, ``n``, ``targets``, ...).
        sample_diag: The persona sample's diagnostics (targets and how each attribute was handled).
        comp: The composition of the personas drawn.
        verdict: Its coverage verdict under ``survey.accept_uncovered``.
    """
    kinds = Counter(q.kind for q in instrument.questions)
    lines = [f"instrument: {instrument.title} ({instrument.id}): {_plural(len(instrument.questions), 'question')} ("
             + ", ".join(f"{n} {k}" for k, n in kinds.items()) + ")"
             + (f", {_plural(len(instrument.experiments), 'survey experiment')}" if instrument.experiments else "")]
    lines.append("human reference, per question (source.variable: answers mapped, missing dropped):")
    for qid, entries in (provenance.get("questions") or {}).items():
        got = "; ".join(f"{e['source']}.{e['variable']}: {e['n']:,} answers, {e['n_missing_dropped']:,} missing"
                        for e in entries) or "no human reference (shown without a comparison)"
        lines.append(f"  {qid}: {got}")
    for warning in provenance.get("warnings") or ():  # e.g. a missing-value code that never occurs
        lines.append(f"mapping warning: {warning}")
    targets = sample_diag.get("targets", "spec")
    what = (f"the weighted composition of {sample_diag.get('reference_source')} (targets: reference)"
            if targets == "reference" else "the spec's own figures (targets: spec)")
    lines.append(f"population: {sample_diag.get('spec_name')} ({population.get('spec')}), "
                 f"{_plural(int(population.get('n', 0)), 'persona')} drawn to {what}")
    for name, how in (sample_diag.get("attribute_handling") or {}).items():
        lines.append(f"  {name}: {how}")
    lines.append("composition: persona share vs weighted human share per code")
    lines.append(format_composition(comp))
    if verdict.ok and verdict.uncovered_personas:
        lines.append(f"coverage: {_plural(verdict.uncovered_personas, 'persona')} without a human counterpart, "
                     f"accepted (survey.accept_uncovered: {', '.join(verdict.accepted)}); a run would proceed")
    elif verdict.ok:
        lines.append("coverage: every persona has a human counterpart in each source that records its attributes; "
                     "a run would proceed")
    else:
        lines.append(f"coverage: refused: {_plural(comp.uncovered_personas(verdict.refused), 'persona')} "
                     f"without a human counterpart ({', '.join(verdict.refused)}); a run would stop before any model call")
    return "\n".join(lines)
