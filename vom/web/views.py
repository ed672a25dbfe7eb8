"""What every app's views use: live fragments, pagination, whitelisted sorting, select options, safe redirects.

Fragment protocol: a region of a page that changes by itself is rendered from its own template and
carries ``data-refresh="<page url>?fragment=<name>"``. vom.js requests that URL every 2 s while the
page is visible and replaces the region's content with the answer. A fragment answer carries the
header ``X-Vom-Fragment: 1`` (anything else — a login page after the session expired, an error —
stops the polling). A region with ``data-refresh-until-idle`` stops polling once the HTML it received
contains no element marked ``data-active`` (no pending/queued/running operation or discovery).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from django.core.paginator import Page
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe

from vom.web.pagination import DeferredJoinPaginator

M = TypeVar("M", bound=Model)

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
FRAGMENT_PARAM = "fragment"


def requested_fragment(request: HttpRequest) -> str | None:
    return request.GET.get(FRAGMENT_PARAM) or None


def render_fragment(request: HttpRequest, template: str, context: Mapping[str, Any]) -> HttpResponse:
    """One live region's HTML, marked as a fragment and never cached."""
    response = render(request, template, dict(context))
    response["X-Vom-Fragment"] = "1"
    response["Cache-Control"] = "no-store"
    return response


def unknown_fragment(name: str) -> Http404:
    return Http404(f"This page has no live region {name!r}.")


def select_options(choices: Iterable[tuple[Any, str]], selected: str | None, empty_label: str) -> SafeString:
    """``<option>`` elements for a select, built in one pass.

    With a thousand providers or hosts, rendering each option through Django's widget templates
    costs more than the whole rest of the page; this builds the same escaped markup directly.
    """
    empty = format_html('<option value="">{}</option>', empty_label)
    return empty + format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, mark_safe(" selected") if str(value) == selected else "", label) for value, label in choices),
    )


def id_param(request: HttpRequest, name: str) -> str | None:
    """The query parameter ``name`` if it is a plausible id (digits, bounded), else None."""
    value = request.GET.get(name) or None
    # Bounded: a 25-digit id would overflow the database's integer and fail the whole page.
    return value if value is not None and value.isdigit() and len(value) <= 18 else None


def page_size(request: HttpRequest) -> int:
    try:
        size = int(request.GET.get("per_page", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def paginate(request: HttpRequest, queryset: QuerySet[M], *, per_page: int | None = None) -> Page:  # type: ignore[type-arg]
    """The requested page of ``queryset`` (out-of-range pages give the last one)."""
    paginator = DeferredJoinPaginator(queryset, per_page or page_size(request))
    return paginator.get_page(request.GET.get("page"))


def sort_queryset(
    request: HttpRequest, queryset: QuerySet[M], keys: Mapping[str, Sequence[str]], default: str
) -> tuple[QuerySet[M], str]:
    """Order by the whitelisted ``?sort=key`` / ``?sort=-key``; anything else falls back to ``default``."""
    sort = request.GET.get("sort") or default
    if sort.lstrip("-") not in keys:
        sort = default
    descending = sort.startswith("-")
    fields = [f"-{field}" if descending else field for field in keys[sort.lstrip("-")]]
    return queryset.order_by(*fields, "-pk" if descending else "pk"), sort


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The ``next`` URL posted with a form when it points back into this site, else ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def redirect_back(request: HttpRequest, fallback_name: str, *args: Any) -> HttpResponseRedirect:
    return HttpResponseRedirect(safe_next(request, reverse(fallback_name, args=args)))
