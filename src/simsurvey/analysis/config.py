"""Config of the analysis stage. Owned by analysis/."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AnalysisConfig(BaseModel):
    """``analysis:`` — metrics, grouping variables, bootstrap, sampling nulls, order effects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_vars: list[str] | None = Field(
        default=None,
        description="Demographic columns to compare subgroups on (besides 'all'); null = the population "
        "spec's compare list. Skipped with a note when either side lacks the column or has it all null.",
    )
    bootstrap: int = Field(
        default=200, ge=0, le=100_000,
        description="Bootstrap replicates B for the bias-corrected percentile CIs (0 disables CIs).",
    )
    ci: float = Field(default=0.95, gt=0.0, lt=1.0, description="Confidence level of the percentile CIs.")
    kl_smoothing: float = Field(
        default=1e-3, gt=0.0, le=1.0,
        description="Additive smoothing eps for KL: p~ = (p + eps) / (1 + K eps) on both sides, so "
        "KL stays finite when one side puts zero mass on an option.",
    )
    n_permutations: int = Field(
        default=1000, ge=0, le=1_000_000,
        description="Permutations of condition labels for the order-effect p-value (0 disables it).",
    )
    null_draws: int = Field(
        default=1000, ge=1, le=100_000,
        description="Replicates of the sampling null of every silicon-vs-human comparison (both sides "
        "drawn from the pooled distribution at their effective sizes): null_mean, null_q95 and "
        "p_value (smallest p = 1/(1 + null_draws)).",
    )
    distribution: Literal["auto", "probs", "answers"] = Field(
        default="auto",
        description="Silicon distributions from the probs column (logprobs), from answer_code counts, "
        "or auto: probs when every row of the model has them.",
    )
    reference_source: str | None = Field(
        default=None,
        description="Reference source (dataset id) to compare with; null = the first source in "
        "reference order for each question.",
    )
    pairs: bool = Field(
        default=True,
        description="Score the pairwise question associations (pair_cramers_v_*, pattern_cramers_v_corr): "
        "Q(Q−1)/2 pairs, so an instrument of hundreds of questions may want it off.",
    )
    scale_min_share: float = Field(
        default=1.0, gt=0.0, le=1.0,
        description="Share of a battery's items a respondent (persona x replicate x condition, or human) must "
        "have answered substantively to get a scale score (the mean of the answered items, reverse-keyed "
        "items reflected; simsurvey.analysis.scale); 1 = complete batteries only.",
    )
    min_group_n: int = Field(
        default=20, ge=1,
        description="Skip a subgroup with fewer rows than this on either side (noted in diagnostics); the overall comparison is always made.",
    )
