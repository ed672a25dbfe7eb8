"""The names of a request's VMs: a pattern like ``web-{n:02d}`` expanded, checked and made distinct."""

from __future__ import annotations

import re
import string

from provisioning.services.common import NAME_RE, NAME_RULE

MAX_COUNT = 500


def expand_pattern(pattern: str, count: int, first: int = 1) -> list[str]:
    """The names a pattern like ``web-{n:02d}`` gives for ``count`` VMs numbered from ``first``.

    Only the field ``n`` is allowed, with an optional format spec; raises ValueError with the reason.
    """
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValueError("a name pattern is required, e.g. web-{n:02d}")
    fields = []
    try:
        for _literal, field, spec, conversion in string.Formatter().parse(pattern):
            if field is None:
                continue
            if field != "n" or conversion:
                raise ValueError(f"only {{n}} may appear in braces (found {{{field}}}); use {{{{ }}}} for a brace")
            if "{" in (spec or ""):
                raise ValueError("a nested field is not allowed in the format of {n}")
            if any(int(width) > 63 for width in re.findall(r"\d+", spec or "")):
                raise ValueError("a name has at most 63 characters: the width in {n:…} is too large")
            fields.append(field)
    except ValueError as exc:
        raise ValueError(f"invalid name pattern: {exc}") from None
    if count > 1 and not fields:
        raise ValueError("the pattern must contain {n} to give each VM its own name, e.g. web-{n:02d}")
    try:
        return [pattern.format(n=number) for number in range(first, first + count)]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid name pattern: {exc}") from None


def pattern_names(name_pattern: str, count: int, first_number: int) -> tuple[list[str], dict[str, list[str]]]:
    """The VM names of a request (valid and distinct), or the field errors saying why there are none."""
    errors: dict[str, list[str]] = {}
    if not 1 <= count <= MAX_COUNT:
        errors["count"] = [f"Between 1 and {MAX_COUNT} VMs per request."]
    if first_number < 0:
        errors["first_number"] = ["Zero or more."]
    elif first_number > 10**9:
        errors["first_number"] = ["Too large."]
    if errors:
        return [], errors
    try:
        names = expand_pattern(name_pattern, count, first_number)
    except ValueError as exc:
        return [], {"name_pattern": [f"{str(exc)[:1].upper()}{str(exc)[1:]}."]}
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        return [], {"name_pattern": [f"{bad[0]!r} is not a valid VM name: {NAME_RULE}."]}
    if len(set(names)) != len(names):
        return [], {"name_pattern": ["The pattern gives the same name to several VMs."]}
    return names, {}
