"""Authentication for every page (the API authenticates itself in DRF), and a queue that is down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect


class VomLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's login-required middleware, except under /api/ where DRF answers 401/403 itself."""

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class QueueUnavailableMiddleware:
    """A page that asked for work while the task queue is down says so, instead of a server error.

    The service recorded nothing (``vom.jobs.lifecycle.submit``); the user is sent back where they
    came from with the reason, and can try again once the queue is back. The API answers 503 itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        from vom.jobs.broker import QueueUnavailable
        from vom.web.views import safe_next

        if not isinstance(exception, QueueUnavailable) or request.path_info.startswith("/api/"):
            return None
        messages.error(request, f"Could not queue the work: {exception}")
        fallback = request.META.get("HTTP_REFERER") or "/"
        return HttpResponseRedirect(safe_next(request, fallback if _same_site(request, fallback) else "/"))


def _same_site(request: HttpRequest, url: str) -> bool:
    from django.utils.http import url_has_allowed_host_and_scheme

    return url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure())
