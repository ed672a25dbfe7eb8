"""Template tags of the provisioning pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from provisioning.models import ended_by_cancel
from vom.templatetags.vom_tags import status_badge

register = template.Library()


@register.simple_tag
def request_status_badge(op: Any, cancelled: int, failed: int) -> SafeString:
    """A provisioning request's status: "Cancelled" when a cancellation alone ended it, else its job's."""
    if ended_by_cancel(op, cancelled=cancelled, failed=failed):
        return format_html('<span class="badge badge-amber">{}</span>', "Cancelled")
    return status_badge(op)
