from __future__ import annotations

from simsurvey.report import _html as H


def test_escaping():
    assert H.esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    t = H.table(["<h>"], [["<b>x</b>"]])
    assert "&lt;b&gt;x&lt;/b&gt;" in t and "<b>" not in t and "&lt;h&gt;" in t
    assert "<script>" not in H.kv([("<script>", "<script>")])
    assert H.figure("<svg></svg>", "a < b") == "<figure><svg></svg><figcaption>a &lt; b</figcaption></figure>"


def test_number_formats():
    assert H.fmt_num(1234) == "1,234"
    assert H.fmt_num(0) == "0"
    assert H.fmt_num(0.12345) == "0.123"
    assert H.fmt_num(float("nan")) == "–" and H.fmt_num(None) == "–"
    assert H.fmt_ci(0.5, 0.25, 0.75, 2) == "0.50 [0.25, 0.75]"
    assert H.fmt_ci(0.5, float("nan"), 0.7, 2) == "0.50"


def test_page_is_self_contained():
    html = H.page("T <1>", "sub", [("a", "A & B", "<p>x</p>")])
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>T &lt;1&gt;</title>" in html and "A &amp; B" in html
    assert "<script" not in html and "<link" not in html and "http" not in html
