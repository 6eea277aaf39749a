"""The report section "Personas and the human sample": composition, coverage, targets."""

from __future__ import annotations

from typing import Any

from simsurvey.report import _html as H
from simsurvey.report._context import Ctx, get_path
from simsurvey.report._overview import targets_sentence


def _stored_or_computed(ctx: Ctx) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The manifest's composition and coverage; computed from the run's files for a run made
    before they were recorded."""
    man = ctx.data.manifest
    comp, cov = man.get("composition"), man.get("coverage")
    if isinstance(comp, dict) and isinstance(cov, dict):
        return comp, cov
    p, h = ctx.data.personas, ctx.data.reference
    if p is None or h is None or h.empty:
        return None, None
    from simsurvey.population.composition import composition, coverage

    c = composition(p, h, ctx.data.variables)
    accept = get_path(man, "config", "survey", "accept_uncovered") or False
    return c.to_json(), coverage(c, accept).to_json()


def personas_and_humans(ctx: Ctx) -> str:
    """Persona share vs weighted human share per source, variable and code; coverage; targets."""
    comp, cov = _stored_or_computed(ctx)
    out = [H.para(targets_sentence(ctx.data.manifest).replace(' shown under "Personas and the human sample"', " below"))]
    if comp is None or cov is None:
        out.append(H.note("No composition: the run directory lacks personas or a human reference."))
        return "".join(out)
    n_unc = int(cov.get("uncovered_personas") or 0)
    n = int(comp.get("personas") or 0)
    if n_unc:
        accepted = ", ".join(map(str, cov.get("accepted_attributes") or []))
        out.append(H.note(
            f"{n_unc:,} of {n:,} personas ({100 * n_unc / max(n, 1):.1f}%) have no human counterpart: their code of "
            f"{accepted} has no respondent in a source that records it (rows marked below). They were accepted "
            "(survey.accept_uncovered); their subgroups have no human comparison, and the reference baseline answers "
            "for them from a coarser cell."))
    elif not any((info.get("variables") or {}) for info in (comp.get("sources") or {}).values()):
        out.append(H.note("No human source records any of the population's attributes: the composition cannot be "
                          "compared, and no subgroup has a human comparison."))
    else:
        out.append(H.para("Every persona has a human counterpart: each code the personas hold has respondents in "
                          "every source that records the attribute."))
    out.append(H.para(
        "Persona share vs the human sample's weighted share per code (shares among the non-null values), for the "
        "unique respondents of each source. Total variation: the share of personas that would have to change code "
        "to match the humans on that attribute; a silicon-vs-human distance includes what this difference does to "
        "the answers."))
    summary, details = [], []
    for src, info in (comp.get("sources") or {}).items():
        rows = []
        for var, v in (info.get("variables") or {}).items():
            codes = v.get("codes") or []
            gap = max(codes, key=lambda c: abs(float(c.get("persona_share") or 0) - float(c.get("human_share") or 0)),
                      default=None)
            bad = [c for c in codes if not c.get("covered", True)]
            summary.append([
                H.esc(src), H.esc(var), H.fmt_num(v.get("total_variation")),
                (f"{H.esc(gap.get('label') or gap.get('code'))}: {H.fmt_num(gap.get('persona_share'))} vs "
                 f"{H.fmt_num(gap.get('human_share'))}") if gap else "–",
                ('<span class="bad">' + H.esc(", ".join(f"{c.get('code')} ({c.get('persona_n')} personas)" for c in bad))
                 + "</span>") if bad else "–",
            ])
            for k, c in enumerate(codes):
                flag = "" if c.get("covered", True) else ' <span class="bad">no human respondent</span>'
                rows.append([H.esc(var) if k == 0 else "", H.esc(c.get("label") or c.get("code")) + flag,
                             H.fmt_num(c.get("persona_share")), H.fmt_num(c.get("human_share")),
                             H.fmt_num(c.get("persona_n")), H.fmt_num(c.get("human_n"))])
        missing = ", ".join(map(str, info.get("not_in_human_data") or []))
        if missing:
            summary.append([H.esc(src), f"<i>{H.esc(missing)}</i>", "–",
                            "not in the human data: subgroups on them cannot be compared", "–"])
        body = H.table(["variable", "code", "persona share", "human share (weighted)", "personas", "respondents"],
                       rows, numeric=[False, False, True, True, True, True], raw=True) if rows else ""
        details.append(f"<details><summary>{H.esc(src)}: {H.fmt_num(info.get('respondents'))} respondents, "
                       f"every code</summary>{body}</details>")
    if summary:
        out.append(H.table(["source", "variable", "total variation", "largest gap (persona vs human share)",
                            "codes without a human respondent"], summary,
                           numeric=[False, False, True, False, False], raw=True))
    out.extend(details)
    return "".join(out)
