"""Sizes as people read them: one formatter for pages, charts, messages and the command line."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(value: float) -> str:
    """1536 → "1.5 KiB"; binary units, one decimal below 100 of a unit."""
    size = float(value)
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{int(size)} B"
    return f"{size:.1f} {_UNITS[unit]}" if size < 100 else f"{size:.0f} {_UNITS[unit]}"
