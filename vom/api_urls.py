"""The REST API under /api/ (namespace ``api``): every app's viewsets on one router."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

import inventory.api.urls
import provisioning.api.urls
from vom.jobs.api import JobViewSet

app_name = "api"

router = DefaultRouter()
router.register("operations", JobViewSet, basename="job")
inventory.api.urls.register(router)
provisioning.api.urls.register(router)

urlpatterns = [*inventory.api.urls.urlpatterns, path("", include(router.urls))]
