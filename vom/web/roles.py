"""Three roles decide who may change what, in the GUI and the API alike.

- viewer: reads everything (every signed-in user is at least a viewer);
- operator: also runs operations (start, stop, snapshot, discover now);
- admin: also configures (providers, users). Superusers are admins.

A user's role is the highest of the groups named ``viewer``, ``operator``, ``admin`` they belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.permissions import SAFE_METHODS, BasePermission

if TYPE_CHECKING:  # importing these at run time is circular: DRF imports this module from its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
_RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}

UserLike = AbstractBaseUser | AnonymousUser


def role_of(user: Any) -> str | None:
    """The user's role, or None when not signed in. Cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    cached = getattr(user, "_vom_role", None)
    if cached:
        return str(cached)
    if user.is_superuser:
        role = ADMIN
    else:
        names = set(user.groups.values_list("name", flat=True))
        role = max((r for r in ROLES if r in names), key=_RANK.__getitem__, default=VIEWER)
    user._vom_role = role
    return role


def has_role(user: Any, needed: str) -> bool:
    role = role_of(user)
    return role is not None and _RANK[role] >= _RANK[needed]


def can_operate(user: Any) -> bool:
    return has_role(user, OPERATOR)


def can_configure(user: Any) -> bool:
    return has_role(user, ADMIN)


F = TypeVar("F", bound=Callable[..., Any])


def role_required(needed: str) -> Callable[[F], F]:
    """View decorator: 403 unless the signed-in user has at least ``needed``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not has_role(request.user, needed):
                raise PermissionDenied(f"This needs the {needed} role.")
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


class RolePermission(BasePermission):
    """DRF permission: reads need a signed-in user; writes need the role the view names.

    A view sets ``write_role`` (default admin) and may override per action with
    ``action_roles = {"start": OPERATOR, …}``.
    """

    message = "You do not have the role this needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if role_of(request.user) is None:
            return False
        action = getattr(view, "action", None)
        action_roles: dict[str, str] = getattr(view, "action_roles", {})
        if action in action_roles:
            needed = action_roles[action]
        elif request.method in SAFE_METHODS:
            needed = VIEWER
        else:
            needed = getattr(view, "write_role", ADMIN)
        if not has_role(request.user, needed):
            self.message = f"This needs the {needed} role."
            return False
        return True


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the user's role and what they may do."""
    user = getattr(request, "user", None)
    return {
        "vom_role": role_of(user),
        "can_operate": can_operate(user),
        "can_configure": can_configure(user),
    }
