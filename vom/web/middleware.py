"""Authentication for every page; the API authenticates itself (session or token) in DRF."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponseBase


class VomLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's login-required middleware, except under /api/ where DRF answers 401/403 itself."""

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
