"""Server-side SVG charts for every page: a donut and horizontal bars.

Pure functions from data to SVG markup. The markup is built as an ElementTree, so every label and
link is escaped by the serializer; nothing user-supplied is ever concatenated into markup.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe

SVG_NS = "http://www.w3.org/2000/svg"
PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777", "#65a30d")


@dataclass(frozen=True)
class Datum:
    """One slice or bar: a label, a count, and optionally its colour and a link to the matching list."""

    label: str
    value: int
    color: str = ""
    href: str = ""
    display: str = ""  # the value as shown (e.g. "1.2 GiB"); the number itself when empty


def _fmt(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, title: str, css_class: str) -> ET.Element:
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "class": f"chart {css_class}",
            "viewBox": f"0 0 {width} {height}",
            "width": str(width),
            "height": str(height),
            "role": "img",
            "aria-label": title,
        },
    )
    ET.SubElement(svg, "title").text = title
    return svg


def _wrap_link(parent: ET.Element, href: str) -> ET.Element:
    """An ``<a>`` around a mark when it has a link, else the parent itself."""
    if not href:
        return parent
    return ET.SubElement(parent, "a", {"href": href})


def _serialize(svg: ET.Element) -> SafeString:
    # ElementTree escapes text and attribute values; the result is well-formed XML.
    return mark_safe(ET.tostring(svg, encoding="unicode"))  # noqa: S308


def _color(datum: Datum, index: int) -> str:
    return datum.color or PALETTE[index % len(PALETTE)]


def _empty(svg: ET.Element, width: int, height: int) -> SafeString:
    ET.SubElement(
        svg, "text", {"x": str(width // 2), "y": str(height // 2), "text-anchor": "middle", "class": "chart-empty"}
    ).text = "No data"
    return _serialize(svg)


def donut(data: Sequence[Datum], *, title: str, size: int = 160, thickness: int = 26) -> SafeString:
    """A donut of ``data`` with the total in the middle and a legend on the right.

    Each slice is a stroked circle with a dash pattern, so one slice of 100 % draws a full ring.
    """
    data = [d for d in data if d.value > 0]
    legend_width = 190
    height = max(size, 22 * len(data) + 10)
    width = size + legend_width
    svg = _svg(width, height, title, "chart-donut")
    if not data:
        return _empty(svg, width, height)
    total = sum(d.value for d in data)
    radius = (size - thickness) / 2
    circumference = 2 * math.pi * radius
    cx = cy = size / 2
    ring = ET.SubElement(svg, "g", {"transform": f"rotate(-90 {_fmt(cx)} {_fmt(cy)})"})
    offset = 0.0
    for index, datum in enumerate(data):
        length = circumference * datum.value / total
        target = _wrap_link(ring, datum.href)
        circle = ET.SubElement(
            target,
            "circle",
            {
                "cx": _fmt(cx),
                "cy": _fmt(cy),
                "r": _fmt(radius),
                "fill": "none",
                "stroke": _color(datum, index),
                "stroke-width": str(thickness),
                "stroke-dasharray": f"{_fmt(length)} {_fmt(circumference - length)}",
                "stroke-dashoffset": _fmt(-offset) if offset else "0",
            },
        )
        ET.SubElement(circle, "title").text = f"{datum.label}: {datum.value} ({100 * datum.value / total:.0f} %)"
        offset += length
    ET.SubElement(
        svg, "text", {"x": _fmt(cx), "y": _fmt(cy - 2), "text-anchor": "middle", "class": "chart-total"}
    ).text = str(total)
    ET.SubElement(
        svg, "text", {"x": _fmt(cx), "y": _fmt(cy + 16), "text-anchor": "middle", "class": "chart-caption"}
    ).text = "total"
    legend_y = max(8, (height - 22 * len(data)) // 2)
    for index, datum in enumerate(data):
        y = legend_y + 22 * index
        item = _wrap_link(svg, datum.href)
        ET.SubElement(
            item,
            "rect",
            {
                "x": str(size + 16),
                "y": str(y + 2),
                "width": "12",
                "height": "12",
                "rx": "2",
                "fill": _color(datum, index),
            },
        )
        ET.SubElement(
            item, "text", {"x": str(size + 34), "y": str(y + 13), "class": "chart-label"}
        ).text = f"{_truncate(datum.label, 18)} · {datum.value}"
    return _serialize(svg)


def hbar(
    data: Sequence[Datum],
    *,
    title: str,
    width: int = 380,
    bar_height: int = 18,
    label_width: int = 130,
    value_width: int = 52,
) -> SafeString:
    """Horizontal bars of ``data``, longest scaled to the available width, value at the end of each."""
    gap = 8
    height = max(40, len(data) * (bar_height + gap) + gap)
    svg = _svg(width, height, title, "chart-hbar")
    if not data:
        return _empty(svg, width, height)
    largest = max(d.value for d in data) or 1
    track = width - label_width - value_width
    for index, datum in enumerate(data):
        y = gap + index * (bar_height + gap)
        item = _wrap_link(svg, datum.href)
        label = ET.SubElement(
            item,
            "text",
            {"x": str(label_width - 8), "y": _fmt(y + bar_height * 0.72), "text-anchor": "end", "class": "chart-label"},
        )
        label.text = _truncate(datum.label, max(8, label_width // 7))
        ET.SubElement(label, "title").text = datum.label
        ET.SubElement(
            item,
            "rect",
            {
                "x": str(label_width),
                "y": str(y),
                "width": str(track),
                "height": str(bar_height),
                "rx": "3",
                "class": "chart-track",
            },
        )
        bar = ET.SubElement(
            item,
            "rect",
            {
                "x": str(label_width),
                "y": str(y),
                "width": _fmt(max(2.0, track * datum.value / largest) if datum.value else 0),
                "height": str(bar_height),
                "rx": "3",
                "fill": _color(datum, index),
            },
        )
        shown = datum.display or str(datum.value)
        ET.SubElement(bar, "title").text = f"{datum.label}: {shown}"
        ET.SubElement(
            item,
            "text",
            {"x": str(label_width + track + 6), "y": _fmt(y + bar_height * 0.72), "class": "chart-value"},
        ).text = shown
    return _serialize(svg)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
