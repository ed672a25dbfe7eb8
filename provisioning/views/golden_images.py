"""Golden images: the list, one image with its children and savings, register, unregister, provision VMs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from provisioning import selectors
from provisioning.forms import GoldenImageForm, ProvisionForm
from provisioning.models import Mode
from provisioning.services.golden_images import register_golden_image, unregister_golden_image
from provisioning.services.requests import pattern_names, request_provisioning, source_of, space_needed
from provisioning.services.savings import ImageSavings, Savings, image_savings
from vom.web import charts
from vom.web.roles import ADMIN, OPERATOR, role_required
from vom.web.units import human_bytes
from vom.web.views import id_param, paginate, render_fragment, requested_fragment, unknown_fragment

REQUESTS_SHOWN = 20
# Colours of the savings charts: what the children take, what full copies would take, copies made.
CHILDREN_COLOR = "#16a34a"
FULL_EQUIVALENT_COLOR = "#9ca3af"
FULL_COPIES_COLOR = "#d97706"


def golden_image_list(request: HttpRequest) -> HttpResponse:
    page = paginate(request, selectors.golden_image_list())
    rows = [(image, Savings.of_listed(image).saved_bytes) for image in page]
    return render(request, "provisioning/golden_images/list.html", {"page": page, "rows": rows})


def savings_chart(result: ImageSavings) -> Any:
    """Space-optimized children's actual allocation against as many full copies, and full copies made."""
    s = result.savings
    n = s.children
    return charts.hbar(
        [
            charts.Datum(
                f"{n} space-optimized", s.children_bytes, CHILDREN_COLOR, display=human_bytes(s.children_bytes)
            ),
            charts.Datum(
                f"as {n} full copies",
                s.full_equivalent_bytes,
                FULL_EQUIVALENT_COLOR,
                display=human_bytes(s.full_equivalent_bytes),
            ),
            charts.Datum(
                f"{s.full_copies} full copies made",
                s.full_copies_bytes,
                FULL_COPIES_COLOR,
                display=human_bytes(s.full_copies_bytes),
            ),
        ],
        title="Storage used by the golden image's children",
        width=560,
        label_width=170,
        value_width=80,
    )


def golden_image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(selectors.golden_image_detail(), pk=pk)
    result = image_savings(image)
    context = {
        "image": image,
        "result": result,
        "savings": result.savings,
        "chart": savings_chart(result),
        "requests": list(selectors.image_requests(image)[:REQUESTS_SHOWN]),
        "request_count": image.requests.count(),
    }
    return render(request, "provisioning/golden_images/detail.html", context)


@role_required(ADMIN)
def golden_image_add(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = GoldenImageForm(request.POST)
    else:
        form = GoldenImageForm(initial={"volume": id_param(request, "volume"), "template_vm": id_param(request, "vm")})
    if request.method == "POST" and form.is_valid():
        try:
            image = register_golden_image(user=request.user, **form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Golden image {image.name} registered from {image.volume_path}.")
            return redirect(image)
    return render(request, "provisioning/golden_images/form.html", {"form": form})


@role_required(ADMIN)
def golden_image_delete(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(selectors.golden_image_list(), pk=pk)
    if request.method == "POST":
        name = image.name
        unregister_golden_image(image=image)
        messages.success(request, f"Golden image {name} unregistered. Its volume {image.volume_path} stays.")
        return redirect("golden-image-list")
    return render(request, "provisioning/golden_images/confirm_delete.html", {"image": image})


def _int(data: Mapping[str, str], name: str, default: int) -> int | None:
    value = (data.get(name) or "").strip()
    if not value:
        return default
    if value.lstrip("-").isdigit() and len(value) <= 12:
        return int(value)
    return None


def name_preview(data: Mapping[str, str]) -> dict[str, Any]:
    """The first and last names a pattern gives (shown while the form is filled in), or why it gives none."""
    count = _int(data, "count", 1)
    first = _int(data, "first_number", 1)
    if count is None or first is None:
        return {"error": "Give a number of VMs and a first number."}
    names, errors = pattern_names(data.get("name_pattern", ""), count, first)
    if errors:
        return {"error": " ".join(message for messages in errors.values() for message in messages)}
    return {"first": names[0], "second": names[1] if len(names) > 2 else "", "last": names[-1], "count": len(names)}


@role_required(OPERATOR)
def golden_image_provision(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(selectors.golden_image_detail(), pk=pk)
    fragment = requested_fragment(request)
    if fragment == "preview":
        return render_fragment(
            request, "provisioning/golden_images/_preview.html", {"preview": name_preview(request.GET)}
        )
    if fragment:
        raise unknown_fragment(fragment)
    form = ProvisionForm(request.POST if request.method == "POST" else None, image=image)
    if request.method == "POST" and form.is_valid():
        try:
            provisioning = request_provisioning(golden_image=image, user=request.user, **form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(
                request,
                f"Provisioning of {provisioning.count} VM{'s' if provisioning.count != 1 else ''} from {image.name} "
                f"queued (request #{provisioning.pk}).",
            )
            return redirect(provisioning)
    if form.is_bound:
        preview = name_preview(request.POST)
    else:
        preview = name_preview({"name_pattern": str(form.initial["name_pattern"])})
    source = source_of(image)
    context = {
        "form": form,
        "image": image,
        "preview": preview,
        "source": source,
        "per_vm": {
            "space_optimized": human_bytes(space_needed(mode=Mode.SPACE_OPTIMIZED, count=1, allocation_bytes=0)),
            "full": human_bytes(space_needed(mode=Mode.FULL, count=1, allocation_bytes=source.allocation_bytes)),
        },
    }
    return render(request, "provisioning/golden_images/provision.html", context)
