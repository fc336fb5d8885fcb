"""The console's charts: well-formed SVG drawn on the server, labels escaped, empty data said plainly."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ops.adapters import charts

SVG = "{http://www.w3.org/2000/svg}"


def test_a_line_chart_has_one_line_per_series_and_a_legend() -> None:
    svg = charts.line_chart({"intake": [0, 3, 6], "referral": [1, 1, 2]}, ["10:00", "10:01", "10:02"], "events")
    root = ET.fromstring(svg)
    assert len(root.findall(f"{SVG}polyline")) == 2
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "intake" in texts and "referral" in texts and "10:00" in texts


def test_labels_are_escaped_and_empty_charts_say_so() -> None:
    svg = charts.bar_chart([("<script>alert(1)</script>", 3.0)], "a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)
    assert "no data yet" in charts.line_chart({}, [], "nothing")
    assert "nothing to show" in charts.bar_chart([], "nothing")


def test_a_waterfall_places_each_hop_on_the_trace_time_axis() -> None:
    svg = charts.waterfall([("refnet-intake", "RegisterCase", 0.0, 10.0),
                            ("refnet-referral", "intake.cases.v1 process", 50.0, 50.0)], "trace")
    bars = ET.fromstring(svg).findall(f"{SVG}rect")
    assert len(bars) == 2
    first, second = (float(b.get("x")) for b in bars)
    assert second > first and float(bars[1].get("width")) > float(bars[0].get("width"))
