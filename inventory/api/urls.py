"""The inventory's part of the REST API: its viewsets and the token sign-in, schema and docs views.

The project composes the API (``vom.api_urls``): each app registers its viewsets on one router, so
``/api/`` lists them all under the ``api`` namespace.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import BaseRouter

from inventory.api import views


def register(router: BaseRouter) -> None:
    router.register("providers", views.ProviderViewSet, basename="provider")
    router.register("hosts", views.HostViewSet, basename="host")
    router.register("vms", views.VMViewSet, basename="vm")
    router.register("disks", views.DiskViewSet, basename="disk")
    router.register("nics", views.NicViewSet, basename="nic")
    router.register("snapshots", views.SnapshotViewSet, basename="snapshot")
    router.register("pools", views.PoolViewSet, basename="pool")
    router.register("volumes", views.VolumeViewSet, basename="volume")
    router.register("networks", views.NetworkViewSet, basename="network")
    router.register("discoveries", views.DiscoveryViewSet, basename="discovery")


urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", views.RedocView.as_view(url_name="api:schema"), name="redoc"),
]
