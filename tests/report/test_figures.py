from __future__ import annotations

import base64

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from simsurvey.report import _figures as F


def _bar_heights(fig):
    ax = fig.axes[0]
    return [p.get_height() for p in ax.patches if isinstance(p, Rectangle) and p.get_zorder() == 2]


def test_distribution_bars_draw_the_shares():
    series = {"human": np.array([0.5, 0.3, 0.2]), "m": np.array([0.1, np.nan, 0.9])}
    fig = F.distribution_bars(["a", "b", "c"], series, {"human": "k", "m": "r"},
                              band=(np.array([0.4, 0.2, 0.1]), np.array([0.6, 0.4, 0.3])), title="q")
    np.testing.assert_allclose(_bar_heights(fig), [0.5, 0.3, 0.2, 0.1, 0.0, 0.9])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["human", "m", "human split-half range"]


def test_ratio_dotplot_has_reference_line_at_one():
    frame = pd.DataFrame({"question_id": ["q1", "q1", "q2"], "group_label": ["all", "sex: male", "all"],
                          "model": ["m"] * 3, "value": [0.8, 1.2, 0.5],
                          "ci_low": [0.7, np.nan, 0.4], "ci_high": [0.9, np.nan, 0.6]})
    fig = F.ratio_dotplot(frame, {"m": "r"}, metric_label="entropy_ratio")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in visible[0].get_lines())


def test_save_figure_svg_inline_deterministic(tmp_path):
    def make():
        return F.distribution_bars(["x <y>"], {"human": np.array([1.0])}, {"human": "k"}, title="t")

    a = F.save_figure(make(), tmp_path / "a.svg", fmt="svg", alt='q "1"')
    b = F.save_figure(make(), tmp_path / "b.svg", fmt="svg", alt='q "1"')
    assert a == b  # same input, same bytes: reports diff cleanly
    assert a.startswith('<svg class="fig" role="img" aria-label="q &quot;1&quot;"')
    assert "x &lt;y&gt;" in a  # label kept as real, escaped text
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")


def test_save_figure_png_is_base64_png(tmp_path):
    fig = F.pattern_heatmaps({"human": pd.DataFrame([[0.1, 0.3]], index=["sex"], columns=["q1", "q2"]),
                              "m": pd.DataFrame([[0.0, np.nan]], index=["sex"], columns=["q1", "q2"])})
    html = F.save_figure(fig, tmp_path / "h.png", fmt="png", dpi=60)
    data = base64.b64decode(html.split("base64,")[1].split('"')[0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == (tmp_path / "h.png").read_bytes()
