"""Server-side SVG charts and the template helpers: well-formed XML, escaped labels, sane numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from vom.templatetags.vom_tags import bytes_h, duration_ms
from vom.web.charts import Datum, donut, hbar

NS = {"svg": "http://www.w3.org/2000/svg"}
EVIL = "<script>alert('x')</script> & \"q\""


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("chart", [donut, hbar])
def test_chart_is_well_formed_and_escapes_labels_and_links(chart):
    markup = chart(
        [Datum(EVIL, 3, href="/vms/?provider=1&state=running"), Datum("stopped", 1, "#6b7280")], title="VMs <by> state"
    )
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    root = ET.fromstring(markup)  # raises if not well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("aria-label") == "VMs <by> state"
    assert any(EVIL[:12] in text for text in _texts(root))  # the label round-trips as text, not markup
    titles = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(title.startswith(EVIL) for title in titles)  # the full label in the tooltip
    links = root.findall(".//svg:a", NS)
    assert links and all(a.get("href") == "/vms/?provider=1&state=running" for a in links)
    assert not root.findall(".//script")


def test_donut_slices_add_up_to_the_ring():
    root = ET.fromstring(donut([Datum("running", 3), Datum("paused", 1)], title="t"))
    circles = root.findall(".//svg:circle", NS)
    assert len(circles) == 2
    lengths = [float(c.get("stroke-dasharray").split()[0]) for c in circles]
    circumference = sum(float(v) for v in circles[0].get("stroke-dasharray").split())
    assert lengths[0] == pytest.approx(circumference * 0.75, rel=1e-3)
    assert sum(lengths) == pytest.approx(circumference, rel=1e-3)
    assert "4" in _texts(root)  # the total in the middle


def test_single_slice_draws_a_full_ring_and_empty_data_says_so():
    root = ET.fromstring(donut([Datum("running", 7)], title="t"))
    (circle,) = root.findall(".//svg:circle", NS)
    drawn, gap = (float(v) for v in circle.get("stroke-dasharray").split())
    assert gap == 0 and drawn > 0
    for chart in (donut, hbar):
        empty = ET.fromstring(chart([], title="t"))
        assert "No data" in _texts(empty)
    assert "No data" in _texts(ET.fromstring(donut([Datum("zero", 0)], title="t")))


def test_hbar_scales_to_the_largest_value():
    root = ET.fromstring(hbar([Datum("a", 10), Datum("b", 5), Datum("c", 0)], title="t"))
    bars = [r for r in root.findall(".//svg:rect", NS) if r.get("fill")]
    widths = [float(r.get("width")) for r in bars]
    assert widths[0] == pytest.approx(2 * widths[1]) and widths[2] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (2 << 30, "2.0 GiB"),
        (10 << 40, "10.0 TiB"),
        (250 << 20, "250 MiB"),
    ],
)
def test_bytes_are_human_readable(value, expected):
    assert bytes_h(value) == expected


def test_durations():
    assert duration_ms(850) == "850 ms"
    assert duration_ms(12_300) == "12.3 s"
    assert duration_ms(245_000) == "4 min 05 s"
    assert duration_ms(None) == "—"


def test_intervals():
    from vom.templatetags.vom_tags import interval_h

    assert [interval_h(v) for v in (45, 90, 300, 3600, 5400, 86400, 7 * 86400)] == [
        "45 s",
        "90 s",
        "5 min",
        "1 h",
        "1 h 30 min",
        "1 d",
        "7 d",
    ]
