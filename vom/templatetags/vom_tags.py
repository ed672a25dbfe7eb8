"""Template helpers of every app: human-readable sizes, status badges, progress bars, sort links.

Everything that produces markup goes through ``format_html`` so names coming from hypervisors
(which may contain ``<&>"'``) are escaped.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from vom.web.units import human_bytes

register = template.Library()

# Operation, discovery and provider statuses → badge colour class.
STATUS_CLASS = {
    "pending": "grey",
    "queued": "grey",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "amber",
    "abandoned": "red",
    "new": "grey",
    "ok": "green",
    "stale": "amber",
}
ACTIVE_STATUSES = {"pending", "queued", "running"}


@register.filter
def bytes_h(value: Any) -> str:
    """1536 → "1.5 KiB"; binary units, one decimal below 100 of a unit. None → "—"."""
    if value is None or value == "":
        return "—"
    try:
        size = float(value)
    except (TypeError, ValueError):
        return "—"
    if size < 0:
        return "—"
    return human_bytes(size)


@register.simple_tag
def fact_value(key: Any, value: Any) -> SafeString | str:
    """An operation's parameter or result: a ``*_bytes`` number as a size, the exact figure on hover."""
    if str(key).endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return format_html('<span title="{} bytes">{}</span>', f"{value:,}", human_bytes(value))
    return str(value)


@register.filter
def duration_ms(value: Any) -> str:
    """Milliseconds as "850 ms", "12.3 s" or "4 min 05 s"."""
    if value is None or value == "":
        return "—"
    ms = int(value)
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@register.filter
def duration_s(value: Any) -> str:
    """Seconds (float) as a duration; None → "—"."""
    if value is None:
        return "—"
    return duration_ms(int(float(value) * 1000))


@register.filter
def interval_h(value: Any) -> str:
    """An interval in whole seconds as "45 s", "5 min", "1 h 30 min" or "2 d"."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return "—"
    if seconds < 60 or seconds % 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24 or hours % 24 or minutes:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


@register.simple_tag
def status_badge(obj: Any) -> SafeString:
    """An operation's, discovery run's or provider's status as a badge.

    Active operations and runs carry ``data-active`` so live regions know to keep polling.
    """
    status = str(obj.status)
    active = status in ACTIVE_STATUSES and hasattr(obj, "is_active")
    return format_html(
        '<span class="badge badge-{}"{}>{}</span>',
        STATUS_CLASS.get(status, "grey"),
        " data-active" if active else "",  # a constant: escaping leaves it as it is
        obj.get_status_display(),
    )


@register.simple_tag
def progress_bar(percent: Any, status: str = "", label: str = "") -> SafeString:
    """A horizontal bar filled to ``percent`` (0–100); its colour follows ``status`` when given."""
    try:
        value = max(0, min(100, int(percent or 0)))
    except (TypeError, ValueError):
        value = 0
    css = {"failed": "bar-red", "succeeded": "bar-green", "running": "bar-blue bar-live"}.get(status, "")
    if not status:  # a capacity bar: amber past 80 %, red past 90 %
        css = "bar-red" if value >= 90 else "bar-amber" if value >= 80 else "bar-green"
    return format_html(
        '<div class="bar {}" role="progressbar" aria-valuenow="{}" aria-valuemin="0" aria-valuemax="100"'
        ' title="{}"><span style="width: {}%"></span></div>',
        css,
        value,
        label or f"{value} %",
        value,
    )


@register.simple_tag(takes_context=True)
def sort_header(context: dict[str, Any], key: str, label: str) -> SafeString:
    """A column header link that sorts by ``key``, toggling the direction when already sorted by it."""
    request: HttpRequest = context["request"]
    current = str(context.get("sort", ""))
    params = request.GET.copy()
    params.pop("page", None)
    if current == key:
        params["sort"], arrow, aria = f"-{key}", " ▲", "ascending"
    elif current == f"-{key}":
        params["sort"], arrow, aria = key, " ▼", "descending"
    else:
        params["sort"], arrow, aria = key, "", "none"
    return format_html('<a class="sort" href="?{}" aria-sort="{}">{}{}</a>', params.urlencode(), aria, label, arrow)


_NAV_SECTIONS = {
    "dashboard": ("dashboard",),
    "providers": ("provider-", "discovery-"),
    "hosts": ("host-",),
    "vms": ("vm-",),
    "storage": ("pool-", "volume-"),
    "networks": ("network-",),
    "operations": ("job-",),
}


@register.simple_tag(takes_context=True)
def nav_active(context: dict[str, Any], section: str) -> str:
    """Return "active" when the current page belongs to ``section`` of the navigation."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    name = getattr(match, "url_name", "") or ""
    return "active" if name.startswith(_NAV_SECTIONS.get(section, (section,))) else ""
