"""What every app's forms use: a service's errors put back on the form's fields."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


class ServiceErrorsMixin:
    """Map a service's ValidationError onto the form's fields (unknown fields become form errors)."""

    def add_service_errors(self, exc: ValidationError) -> None:
        form: forms.Form = self  # type: ignore[assignment]
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc.messages)
