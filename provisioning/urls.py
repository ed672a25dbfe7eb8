"""URLs of the provisioning pages of the browser GUI (under /provisioning/)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
