"""Survey instrument models: options, questions, batteries, experiments, instruments.

Codes are strings everywhere (``"strong_democrat"``, ``"1"``); a question's options are listed
in their canonical order, which for an ordinal question is the scale order (position 0 is one
end of the scale). Answers are always recorded as canonical option codes, whatever order and
labels were displayed.

Validation lives on the models, so an instrument built in code is checked exactly like one
loaded from YAML: duplicate option codes, an ordinal question with fewer than two substantive
options, a single_choice question with fewer than two options shown, and a reference mapping
onto an unknown option code are all rejected with a message naming the question.

Kinds: ``single_choice``, ``ordinal``, ``multi_select`` and ``numeric`` (a bounded scale such as a
0-100 feeling thermometer: answers are kept on the raw scale and binned into generated ordinal
options, :class:`NumericScale`). A *battery* (grid) is written in YAML as one ``kind: battery``
entry (stem, shared options or scale, items) and expanded into one question per item
(:func:`expand_batteries`), so every item is scored as a question of its own. *Experiments*
(:class:`Experiment`) are named arms that reword questions or add a vignette; the design deals
the arms between personas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

QuestionKind = Literal["single_choice", "ordinal", "multi_select", "numeric"]
#: Kinds a battery's items may have.
ItemKind = Literal["single_choice", "ordinal", "numeric"]
#: Whole-number scales with at most this many values get one bin per value by default.
MAX_VALUE_BINS = 11
#: Equal-width bins of a numeric scale by default (wider or fractional scales).
DEFAULT_BINS = 10


def _to_code(value: Any) -> Any:
    """YAML reads ``1`` as an int and ``1.0`` as a float; codes and data values are strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _to_code_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {_to_code(k): _to_code(v) for k, v in value.items()}
    return value


def _to_code_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_code(v) for v in value]
    return value


Code = Annotated[str, BeforeValidator(_to_code)]


class SelectedItem(BaseModel):
    """One option of a multi_select question answered by a yes/no variable of the data set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variable: str = Field(min_length=1, description="The yes/no variable (column) for this option.")
    yes: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        min_length=1, description="Values meaning the option is selected (e.g. [1]).")
    no: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        min_length=1, description="Values meaning it is not selected (e.g. [0]).")


class ReferenceMapping(BaseModel):
    """Where a question's human answers come from in one reference data set.

    A single variable mapped by ``codes``, or, for a multi_select question, one yes/no variable
    per option (``selected``): a respondent's answer is the set of options answered yes, as the
    ``"a|c"`` code, and ``none`` the option code of the empty set (e.g. "None of these").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="Reference data set id, e.g. 'cces2016' or 'anes1996'.")
    variable: str = Field(default="", description="Variable (column) in that data set (not with `selected`).")
    codes: Annotated[dict[str, str], BeforeValidator(_to_code_map)] = Field(
        default_factory=dict,
        description="Map from the data set's value (as a string, '1' not '1.0') to this question's option code. "
        "Required except for numeric questions, whose variable's value is the answer (codes may then map "
        "special values to the question's non-substantive options, e.g. 998 -> dk).",
    )
    missing: Annotated[tuple[str, ...], BeforeValidator(_to_code_list)] = Field(
        default=(),
        description="Data set values that mean 'no answer' (dropped and counted, like NaN).",
    )
    selected: dict[str, SelectedItem] = Field(
        default_factory=dict,
        description="multi_select only: option code -> its yes/no variable. A respondent missing any "
                    "of them is dropped and counted.",
    )
    none: Code | None = Field(
        default=None, description="With `selected`: the option code of a respondent who selected none.")
    where: dict[str, Annotated[tuple[str, ...], BeforeValidator(_to_code_list)]] = Field(
        default_factory=dict,
        description="Keep only respondents whose variable has one of these values, e.g. {year: [2018]}.",
    )
    note: str = Field(default="", description="How the data set's coding maps onto the options, and why.")

    @model_validator(mode="after")
    def _check(self) -> ReferenceMapping:
        if self.selected:
            if self.variable or self.codes:
                raise ValueError(f"reference {self.dataset}: give either variable/codes or selected, not both")
            for code, item in self.selected.items():
                both = set(item.yes) & set(item.no)
                if both:
                    raise ValueError(f"reference {self.dataset}: selected.{code}: value '{sorted(both)[0]}' is in"
                                     " both yes and no")
        else:
            if not self.variable:
                raise ValueError(f"reference {self.dataset}: variable is missing (or give selected)")
            if self.none is not None:
                raise ValueError(f"reference {self.dataset}.{self.variable}: none is only for selected")
        return self

    @property
    def label(self) -> str:
        """The variable(s) the answers come from, for messages and provenance."""
        return self.variable or "+".join(item.variable for item in self.selected.values())


class Option(BaseModel):
    """One answer option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code = Field(description="Stable canonical code, recorded in every answer.")
    label: str = Field(min_length=1, description="Text shown to the respondent.")
    non_substantive: bool = Field(
        default=False, description="Don't know / refused / no opinion: kept out of substantive distributions."
    )
    neutral: bool = Field(
        default=False, description="Shown only in the design's neutral-option variant."
    )


def _fmt(x: float) -> str:
    return f"{x:g}"


class NumericScale(BaseModel):
    """A numeric answer scale (a 0-100 feeling thermometer, a 1-10 rating, years).

    Answers are recorded on the raw scale (``answer_value``) and in bins (``answer_code``): bin i
    is ``[bins[i], bins[i+1])``, the last bin closed, so the binned answers are an ordinal
    question's and every distribution metric applies to them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float = Field(description="Lowest allowed answer.")
    max: float = Field(description="Highest allowed answer.")
    step: float | None = Field(
        default=1.0, description="Answer granularity: 1 = whole numbers; null = any real number."
    )
    unit: str = Field(default="", description="Unit named in the prompt (e.g. 'degrees', 'years').")
    bins: tuple[float, ...] = Field(
        default=(),
        description=(
            "Bin edges from min to max (ascending). Default: one bin per value for whole-number "
            f"scales of at most {MAX_VALUE_BINS} values, else {DEFAULT_BINS} equal-width bins."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> NumericScale:
        if not self.max > self.min:
            raise ValueError(f"scale: max ({_fmt(self.max)}) must be greater than min ({_fmt(self.min)})")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"scale: step must be positive (got {_fmt(self.step)})")
        if self.bins:
            b = self.bins
            if len(b) < 3:
                raise ValueError("scale.bins: give at least 3 edges (2 bins)")
            if any(y <= x for x, y in zip(b, b[1:])):
                raise ValueError("scale.bins: edges must be strictly increasing")
            if b[0] != self.min or b[-1] != self.max:
                raise ValueError(
                    f"scale.bins: the edges must run from min to max ({_fmt(self.min)} .. {_fmt(self.max)}),"
                    f" got {_fmt(b[0])} .. {_fmt(b[-1])}"
                )
        return self

    @property
    def whole(self) -> bool:
        """True for a scale of whole numbers (step 1 from an integer minimum)."""
        return self.step == 1 and float(self.min).is_integer() and float(self.max).is_integer()

    @property
    def values(self) -> tuple[float, ...] | None:
        """Every allowed value of a discrete scale (``step`` set), else None."""
        if self.step is None:
            return None
        n = int(round((self.max - self.min) / self.step))
        return tuple(self.min + i * self.step for i in range(n + 1))

    @property
    def edges(self) -> tuple[float, ...]:
        """The bin edges in use (declared, or the default)."""
        if self.bins:
            return self.bins
        vals = self.values
        if self.whole and vals is not None and len(vals) <= MAX_VALUE_BINS:
            # One bin per value, edges half-way between values (the last bin closed).
            return (self.min, *(v + 0.5 for v in vals[:-1]), self.max)
        width = (self.max - self.min) / DEFAULT_BINS
        return tuple(self.min + i * width for i in range(DEFAULT_BINS)) + (self.max,)

    def bin_labels(self) -> list[tuple[str, str]]:
        """``(code, label)`` of each bin in scale order."""
        e = self.edges
        vals = self.values
        if not self.bins and self.whole and vals is not None and len(vals) <= MAX_VALUE_BINS:
            return [(_fmt(v), _fmt(v)) for v in vals]
        out = []
        for i, (lo, hi) in enumerate(zip(e, e[1:])):
            last = i == len(e) - 2
            code = f"{_fmt(lo)}-{_fmt(hi)}"
            if self.whole:
                top = hi if last else (hi - 1 if float(hi).is_integer() else int(hi))
                label = f"{_fmt(lo)}-{_fmt(top)}" if top != lo else _fmt(lo)
            else:
                label = f"{_fmt(lo)} to {'' if last else 'under '}{_fmt(hi)}"
            out.append((code, label))
        return out

    def bin_index(self, value: float) -> int | None:
        """The bin a value falls in (None outside the scale or NaN)."""
        if value != value or value < self.min or value > self.max:
            return None
        e = self.edges
        for i in range(len(e) - 1):
            if value < e[i + 1]:
                return i
        return len(e) - 2


class Question(BaseModel):
    """One survey question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Stable question id, recorded in every answer.")
    text: str = Field(min_length=1, description="Question wording shown to the respondent.")
    kind: QuestionKind = Field(
        description="single_choice (nominal), ordinal (options in scale order), multi_select or numeric."
    )
    options: tuple[Option, ...] = Field(
        default=(),
        description=(
            "Options in canonical (scale) order. A numeric question's substantive options are its "
            "scale's bins (generated); it may list only non-substantive ones (Don't know)."
        ),
    )
    scale: NumericScale | None = Field(default=None, description="The answer scale of a numeric question.")
    battery: str | None = Field(default=None, description="Id of the battery (grid) this item belongs to.")
    stem: str | None = Field(default=None, description="The battery's shared stem, shown above the item text.")
    reverse_keyed: bool = Field(default=False, description="A battery item scored in reverse (for internal consistency).")
    reference: tuple[ReferenceMapping, ...] = Field(
        default=(), description="Where the human answers to this question come from."
    )
    source: str = Field(default="", description="Where the wording comes from (survey, variable, codebook).")
    notes: str = Field(default="", description="Anything a reader of the results should know.")

    @model_validator(mode="before")
    @classmethod
    def _numeric_options(cls, data: Any) -> Any:
        """A numeric question's substantive options are generated from its scale's bins."""
        if not isinstance(data, dict) or data.get("kind") != "numeric":
            return data
        qid = data.get("id", "?")
        if data.get("scale") is None:
            raise ValueError(f"question '{qid}': a numeric question needs a scale (min, max)")
        scale = data["scale"] if isinstance(data["scale"], NumericScale) else NumericScale.model_validate(data["scale"])
        extra = [o if isinstance(o, Option) else Option.model_validate(o) for o in data.get("options") or ()]
        bad = [o.code for o in extra if not o.non_substantive]
        if bad:
            raise ValueError(
                f"question '{qid}': a numeric question's options come from its scale's bins; "
                f"option '{bad[0]}' must be non_substantive (e.g. Don't know)"
            )
        generated = [Option(code=c, label=lbl) for c, lbl in scale.bin_labels()]
        if {o.code for o in generated} & {o.code for o in extra}:
            raise ValueError(f"question '{qid}': an option code clashes with a bin code of the scale")
        return {**data, "scale": scale, "options": (*generated, *extra)}

    @model_validator(mode="after")
    def _check(self) -> Question:
        if not self.options:
            raise ValueError(f"question '{self.id}': no options")
        if self.kind != "numeric" and self.scale is not None:
            raise ValueError(f"question '{self.id}': scale is only for numeric questions (kind is {self.kind})")
        if (self.stem is not None or self.reverse_keyed) and self.battery is None:
            raise ValueError(f"question '{self.id}': stem and reverse_keyed belong to battery items")
        seen: set[str] = set()
        for o in self.options:
            if o.code in seen:
                raise ValueError(f"question '{self.id}': duplicate option code '{o.code}'")
            seen.add(o.code)
        if self.kind == "ordinal" and len(self.substantive_codes) < 2:
            raise ValueError(
                f"question '{self.id}': an ordinal question needs at least 2 substantive options"
                f" (got {len(self.substantive_codes)})"
            )
        if self.kind == "single_choice" and len(self.displayed_codes()) < 2:
            # One option shown is no choice: every answer would be that option (or invalid).
            raise ValueError(
                f"question '{self.id}': a single_choice question needs at least 2 options shown"
                f" (got {len(self.displayed_codes())})"
            )
        datasets: set[str] = set()
        for ref in self.reference:
            if ref.dataset in datasets:
                raise ValueError(f"question '{self.id}': two reference mappings for dataset '{ref.dataset}'")
            datasets.add(ref.dataset)
            if ref.selected:
                where = f"question '{self.id}': reference {ref.dataset}"
                if self.kind != "multi_select":
                    raise ValueError(f"{where}: selected is only for multi_select questions (kind is {self.kind})")
                for code in ref.selected:
                    if code not in seen:
                        raise ValueError(f"{where}: selected names unknown option code '{code}'")
                if ref.none is not None and (ref.none not in seen or ref.none in ref.selected):
                    raise ValueError(f"{where}: none must be an option code not in selected (got '{ref.none}')")
            if not ref.codes and not ref.selected and self.kind != "numeric":
                # A numeric question's variable holds the answer itself; every other kind maps codes.
                raise ValueError(f"question '{self.id}': reference {ref.dataset}.{ref.variable}: codes is missing")
            for value, code in ref.codes.items():
                if self.kind == "numeric" and code in seen and not self.option(code).non_substantive:
                    raise ValueError(
                        f"question '{self.id}': reference {ref.dataset}.{ref.variable} maps value '{value}' to"
                        f" bin '{code}'; a numeric question's values are the answers (map only non-substantive codes)"
                    )
                if code not in seen:
                    raise ValueError(
                        f"question '{self.id}': reference {ref.dataset}.{ref.variable} maps value"
                        f" '{value}' to unknown option code '{code}'"
                    )
            both = set(ref.codes) & set(ref.missing)
            if both:
                raise ValueError(
                    f"question '{self.id}': reference {ref.dataset}.{ref.variable} lists value"
                    f" '{sorted(both)[0]}' both in codes and in missing"
                )
        return self

    @property
    def is_numeric(self) -> bool:
        """True for a numeric (scale) question."""
        return self.kind == "numeric"

    def bin_code(self, value: float) -> str | None:
        """The code of the bin a numeric answer falls in (None outside the scale, or not numeric)."""
        if self.scale is None:
            return None
        i = self.scale.bin_index(float(value))
        return None if i is None else self.substantive_codes[i]

    @property
    def codes(self) -> tuple[str, ...]:
        """All option codes in canonical order."""
        return tuple(o.code for o in self.options)

    @property
    def substantive_codes(self) -> tuple[str, ...]:
        """Codes of substantive, non-neutral options in canonical (scale) order."""
        return tuple(o.code for o in self.options if not o.non_substantive and not o.neutral)

    @property
    def has_neutral(self) -> bool:
        """True when the question has an option shown only in the neutral variant."""
        return any(o.neutral for o in self.options)

    def displayed_codes(self, *, neutral: bool = False) -> tuple[str, ...]:
        """Codes shown to a respondent, in canonical order (neutral options only if ``neutral``)."""
        return tuple(o.code for o in self.options if neutral or not o.neutral)

    def option(self, code: str) -> Option:
        """The option with this code (KeyError if none)."""
        for o in self.options:
            if o.code == code:
                return o
        raise KeyError(code)

    def reference_for(self, dataset: str) -> ReferenceMapping | None:
        """This question's mapping onto ``dataset``, or None."""
        for ref in self.reference:
            if ref.dataset == dataset:
                return ref
        return None


_BATTERY_KEYS = {"id", "kind", "text", "item_kind", "options", "scale", "items", "source", "notes"}
_ITEM_KEYS = {"id", "text", "reference", "reverse_keyed", "source", "notes"}


def expand_batteries(questions: Any) -> Any:
    """Expand each ``kind: battery`` entry of an instrument's question list into its items.

    A battery is ``{id, kind: battery, text (the stem), item_kind, options | scale, items: [{id,
    text, reference, reverse_keyed, source, notes}]}``; each item becomes a question of kind
    ``item_kind`` (default ordinal) sharing the battery's options or scale, with ``battery`` and
    ``stem`` set. Anything else passes through unchanged.
    """
    if not isinstance(questions, (list, tuple)):
        return questions
    out: list[Any] = []
    for entry in questions:
        if not (isinstance(entry, dict) and entry.get("kind") == "battery"):
            out.append(entry)
            continue
        bid = entry.get("id")
        if not isinstance(bid, str) or not bid:
            raise ValueError("a battery needs an id")
        unknown = sorted(set(entry) - _BATTERY_KEYS)
        if unknown:
            raise ValueError(f"battery '{bid}': unknown key '{unknown[0]}'")
        if not entry.get("text"):
            raise ValueError(f"battery '{bid}': missing text (the stem shown above every item)")
        items = entry.get("items")
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"battery '{bid}': no items (list them under items:)")
        item_kind = entry.get("item_kind", "ordinal")
        if item_kind not in ("single_choice", "ordinal", "numeric"):
            raise ValueError(f"battery '{bid}': item_kind must be single_choice, ordinal or numeric (got {item_kind!r})")
        for j, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"battery '{bid}': item {j} must be a mapping with id and text")
            bad = sorted(set(item) - _ITEM_KEYS)
            if bad:
                raise ValueError(f"battery '{bid}': item '{item.get('id', j)}': unknown key '{bad[0]}'")
            q: dict[str, Any] = {
                "id": item.get("id"), "text": item.get("text"), "kind": item_kind,
                "battery": bid, "stem": entry["text"],
                "reverse_keyed": item.get("reverse_keyed", False),
                "reference": item.get("reference", ()),
                "source": item.get("source", entry.get("source", "")),
                "notes": item.get("notes", entry.get("notes", "")),
            }
            for key in ("options", "scale"):
                if key in entry:
                    q[key] = entry[key]
            out.append(q)
    return out


class ArmChange(BaseModel):
    """How one arm of an experiment changes one question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = Field(default=None, min_length=1, description="Wording that replaces the question's text.")
    vignette: str | None = Field(default=None, min_length=1, description="Text shown before the question.")

    @model_validator(mode="after")
    def _check(self) -> ArmChange:
        if self.text is None and self.vignette is None:
            raise ValueError("an arm's change needs text or vignette")
        return self


class Arm(BaseModel):
    """One arm (treatment) of a survey experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Arm id, recorded as `arm` on every row.")
    label: str = Field(default="", description="Readable name for the report.")
    questions: dict[str, ArmChange] = Field(
        default_factory=dict,
        description="Question id -> how this arm words it; a question not listed is asked as written.",
    )


class ExperimentReference(BaseModel):
    """Where a human data set records which arm each respondent got."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="Reference data set id.")
    variable: str = Field(description="Variable holding the assigned arm.")
    codes: Annotated[dict[str, str], BeforeValidator(_to_code_map)] = Field(
        description="Map from the data set's value to an arm id."
    )


class Experiment(BaseModel):
    """A survey experiment: arms assigned at random between personas (a split ballot)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Experiment id, recorded as `experiment` on its rows.")
    description: str = Field(default="", description="What the experiment varies and where it comes from.")
    control: str | None = Field(default=None, description="Arm effects are measured against (default: the first arm).")
    arms: tuple[Arm, ...] = Field(description="The arms, at least two.")
    reference: tuple[ExperimentReference, ...] = Field(
        default=(), description="Human data sets that record each respondent's arm."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_reference(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("reference"), dict):
            return {**data, "reference": [data["reference"]]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        if len(self.arms) < 2:
            raise ValueError(f"experiment '{self.id}': needs at least 2 arms (got {len(self.arms)})")
        ids = [a.id for a in self.arms]
        dup = sorted({a for a in ids if ids.count(a) > 1})
        if dup:
            raise ValueError(f"experiment '{self.id}': arm '{dup[0]}' is listed twice")
        if self.control is not None and self.control not in ids:
            raise ValueError(f"experiment '{self.id}': control '{self.control}' is not one of its arms ({', '.join(ids)})")
        if not self.question_ids:
            raise ValueError(f"experiment '{self.id}': no arm changes a question (give arms[].questions)")
        for ref in self.reference:
            for value, arm in ref.codes.items():
                if arm not in ids:
                    raise ValueError(
                        f"experiment '{self.id}': reference {ref.dataset}.{ref.variable} maps value '{value}'"
                        f" to unknown arm '{arm}'"
                    )
        return self

    @property
    def arm_ids(self) -> tuple[str, ...]:
        """Arm ids in declared order."""
        return tuple(a.id for a in self.arms)

    @property
    def control_arm(self) -> str:
        """The arm effects are measured against."""
        return self.control or self.arms[0].id

    @property
    def question_ids(self) -> tuple[str, ...]:
        """Questions any arm changes, in first-seen order."""
        out: list[str] = []
        for a in self.arms:
            for qid in a.questions:
                if qid not in out:
                    out.append(qid)
        return tuple(out)

    def arm(self, arm_id: str) -> Arm:
        """The arm with this id (KeyError if none)."""
        for a in self.arms:
            if a.id == arm_id:
                return a
        raise KeyError(arm_id)

    def apply(self, question: Question, arm_id: str) -> Question:
        """The question as arm ``arm_id`` words it (its text replaced, a vignette added before it)."""
        change = self.arm(arm_id).questions.get(question.id)
        if change is None:
            return question
        text = change.text if change.text is not None else question.text
        if change.vignette is not None:
            text = f"{change.vignette.strip()}\n\n{text}"
        return question.model_copy(update={"text": text})

    def reference_for(self, dataset: str) -> ExperimentReference | None:
        """Where ``dataset`` records the arm, or None."""
        for ref in self.reference:
            if ref.dataset == dataset:
                return ref
        return None


class Instrument(BaseModel):
    """A survey instrument: an id, a title, its questions and its experiments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Instrument id.")
    title: str = Field(description="Human-readable title.")
    description: str = Field(default="", description="What the instrument measures and where it comes from.")
    questions: tuple[Question, ...] = Field(
        min_length=1, description="Questions in administration order (a battery entry expands into its items)."
    )
    experiments: tuple[Experiment, ...] = Field(
        default=(), description="Survey experiments: arms that change questions, assigned between personas."
    )

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "questions" in data:
            return {**data, "questions": expand_batteries(data["questions"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> Instrument:
        seen: set[str] = set()
        for q in self.questions:
            if q.id in seen:
                raise ValueError(f"duplicate question id '{q.id}'")
            seen.add(q.id)
        for bid, items in self.batteries.items():
            if bid in seen:
                raise ValueError(f"battery '{bid}': its id is also a question id")
            qs = [self.question(i) for i in items]
            if len({(q.kind, q.options, q.scale) for q in qs}) > 1:
                raise ValueError(f"battery '{bid}': items must share one kind and answer scale")
            first = self.questions.index(qs[0])
            if [q.id for q in self.questions[first:first + len(qs)]] != list(items):
                raise ValueError(f"battery '{bid}': its items must be consecutive questions")
        owner: dict[str, str] = {}
        eids: set[str] = set()
        for e in self.experiments:
            if e.id in eids:
                raise ValueError(f"experiment '{e.id}' is listed twice")
            eids.add(e.id)
            for qid in e.question_ids:
                if qid not in seen:
                    raise ValueError(f"experiment '{e.id}': an arm changes unknown question '{qid}'")
                if qid in owner:
                    raise ValueError(f"question '{qid}' is in two experiments ('{owner[qid]}' and '{e.id}')")
                owner[qid] = e.id
        return self

    @property
    def batteries(self) -> dict[str, tuple[str, ...]]:
        """Battery id -> its item question ids, in instrument order."""
        out: dict[str, list[str]] = {}
        for q in self.questions:
            if q.battery is not None:
                out.setdefault(q.battery, []).append(q.id)
        return {b: tuple(v) for b, v in out.items()}

    def experiment_of(self, question_id: str) -> Experiment | None:
        """The experiment whose arms change this question, or None."""
        for e in self.experiments:
            if question_id in e.question_ids:
                return e
        return None

    @property
    def question_ids(self) -> tuple[str, ...]:
        """Question ids in administration order."""
        return tuple(q.id for q in self.questions)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Reference data set ids any question maps onto, in first-seen order."""
        out: list[str] = []
        for q in self.questions:
            for ref in q.reference:
                if ref.dataset not in out:
                    out.append(ref.dataset)
        return tuple(out)

    def question(self, question_id: str) -> Question:
        """The question with this id (KeyError if none)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)
