"""What every report section shares: the run's data, the config, colours, metric help."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from simsurvey.nested import get_path  # noqa: F401 - the report's sections import it from here
from simsurvey.report import _figures as F
from simsurvey.report._data import RunData, human_answers, is_baseline, silicon_answers, slug
from simsurvey.report.config import ReportConfig


#: How to read each metric (direction and meaning), shown beside its name in tables.
METRIC_HELP: dict[str, str] = {
    "js_divergence": "Jensen-Shannon divergence to humans; 0 = identical, lower is better",
    "kl_silicon_human": "KL(silicon || human); lower is better",
    "kl_human_silicon": "KL(human || silicon); lower is better",
    "total_variation": "share of answers that would have to move; lower is better",
    "wasserstein_norm": "earth mover's distance over scale positions, 0..1; lower is better",
    "representativeness": "1 - W1/(K-1) (OpenOpinionQA); 1 = identical, higher is better",
    "entropy_norm_silicon": "answer diversity of the silicon sample, 0..1",
    "entropy_norm_human": "answer diversity of the human sample, 0..1",
    "entropy_ratio": "silicon/human entropy; below 1 = silicon answers are more uniform",
    "variance_silicon": "variance of silicon answers on the scale",
    "variance_human": "variance of human answers on the scale",
    "variance_ratio": "silicon/human variance; below 1 = homogenized",
    "gini_simpson_silicon": "chance two silicon answers differ",
    "gini_simpson_human": "chance two human answers differ",
    "gini_simpson_ratio": "silicon/human Gini-Simpson; below 1 = homogenized",
    "cramers_v_silicon": "association of answer with demographics, silicon",
    "cramers_v_human": "association of answer with demographics, humans",
    "subgroup_mean_corr": "correlation of subgroup means, silicon vs human; higher is better",
    "pattern_cramers_v_corr": "correlation of Cramér's V patterns, silicon vs human; higher is better",
    "no_persona_js": "JS between no-persona answers and the persona mixture; near 0 = the parts add up to the whole",
    "no_persona_js_human": "JS between no-persona answers and the humans",
    "entropy_ratio_answers": "silicon/human entropy of the drawn/argmax answers (probs mode)",
    "variance_ratio_answers": "silicon/human variance of the drawn/argmax answers (probs mode)",
    "gini_simpson_ratio_answers": "silicon/human Gini-Simpson of the drawn/argmax answers (probs mode)",
    "invalid_rate": "share of unparseable answers; lower is better",
    "refusal_rate": "share of refusals",
    "nonsubstantive_rate": "share of don't know / no opinion answers",
    "value_mean_silicon": "mean silicon answer on the raw scale",
    "value_mean_human": "mean human answer on the raw scale",
    "value_mean_diff": "silicon - human mean on the raw scale; 0 = same level",
    "value_sd_silicon": "SD of silicon answers on the raw scale",
    "value_sd_human": "SD of human answers on the raw scale",
    "value_variance_ratio": "silicon/human variance on the raw scale; below 1 = homogenized",
    "value_wasserstein_norm": "earth mover's distance on the raw scale / its range, 0..1; lower is better",
    "value_ks": "largest gap between the silicon and human CDFs (Kolmogorov-Smirnov), 0..1; lower is better",
    "scale_mean_silicon": "mean silicon scale score (1..K)",
    "scale_mean_human": "mean human scale score (1..K)",
    "scale_mean_diff": "silicon - human mean scale score; 0 = same level",
    "scale_sd_silicon": "SD of silicon scale scores",
    "scale_sd_human": "SD of human scale scores",
    "scale_variance_ratio": "silicon/human variance of scale scores (SD ratio squared); below 1 = homogenized",
    "scale_wasserstein_norm": "earth mover's distance between the score distributions / (K-1), 0..1; lower is better",
    "scale_ks": "largest gap between the silicon and human score CDFs (Kolmogorov-Smirnov), 0..1; lower is better",
}
RATIO_METRICS = ("entropy_ratio", "variance_ratio", "gini_simpson_ratio", "entropy_ratio_answers",
                 "variance_ratio_answers", "gini_simpson_ratio_answers")
MIN_GROUP_N = 5  # fewer answers than this in a subgroup gives a mean too noisy to plot



class Ctx:
    """What every section needs: the data, the config, where figures go, model colours."""

    def __init__(self, data: RunData, cfg: ReportConfig) -> None:
        self.data = data
        self.cfg = cfg
        self.fig_dir = data.run_dir / "figures"
        self.models = data.models
        self.colors = F.model_colors(self.models, [is_baseline(m) for m in self.models])
        self.silicon = silicon_answers(data)
        self.human = human_answers(data)
        self.seed = int(data.manifest.get("seed", 0) or 0)
        self._use_probs: dict[str, bool] = {}
        analyze = get_path(data.manifest, "stages", "analyze") or {}
        skipped = analyze.get("skipped_groups") if isinstance(analyze, dict) else None
        self.skipped = pd.DataFrame(skipped if isinstance(skipped, list) else [],
                                    columns=["model", "question_id", "group_var", "group_value", "n_silicon", "n_human"])
        self.analysis_notes = [str(n) for n in (analyze.get("notes") or [])] if isinstance(analyze, dict) else []

    def silicon_n_eff(self, question_id: str) -> float:
        """Effective silicon sample size of the model under study on a question (the overall
        js_divergence row of metrics.parquet; the first non-baseline model), NaN if unknown."""
        m = self.data.metrics
        if m is None or "n_eff_silicon" not in m.columns:
            return float("nan")
        rows = m[(m["metric"] == "js_divergence") & (m["group_var"] == "all")
                 & (m["question_id"].astype(str) == question_id)]
        models = [x for x in self.models if not is_baseline(x)] or list(self.models)
        for x in models:
            r = rows[rows["model"].astype(str) == x]
            if len(r):
                return float(r["n_eff_silicon"].iloc[0])
        return float("nan")

    def use_probs(self, model: str) -> bool:
        """Whether ``model``'s distributions come from its probs (as the analyzer decided).

        The analyzer's choice is read from the manifest (stages.analyze.models); without it the
        same rule applies: probs when every persona row of the model has them.
        """
        if model not in self._use_probs:
            mode = get_path(self.data.manifest, "stages", "analyze", "models", model, "distribution")
            if mode in ("probs", "answers"):
                self._use_probs[model] = mode == "probs"
            else:
                rows = self.silicon[self.silicon["model"] == model]
                self._use_probs[model] = bool(len(rows)) and bool(rows["probs"].notna().all())
        return self._use_probs[model]

    def skipped_note(self) -> str:
        """Why metrics may be absent: the analyzer's too-small groups, from the manifest."""
        if self.skipped.empty:
            return ""
        return (f" The analysis skipped {len(self.skipped)} model × question × group cell(s) with too few answers "
                "(analysis.min_group_n); they are listed in manifest.json under stages.analyze.skipped_groups.")

    def fig(self, fig: Any, name: str, alt: str) -> str:
        path: Path = self.fig_dir / f"{slug(name)}.{self.cfg.figure_format}"
        return F.save_figure(fig, path, fmt=self.cfg.figure_format, dpi=self.cfg.png_dpi, alt=alt)

    def metrics_all(self) -> pd.DataFrame:
        m = self.data.metrics
        if m is None or "metric" not in m.columns:
            return pd.DataFrame(columns=["model", "question_id", "metric", "value"])
        return m[m["group_var"].astype(str) == "all"] if "group_var" in m.columns else m
