from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("vom.api_urls")),
    path("provisioning/", include("provisioning.urls")),
    path("", include("vom.jobs.urls")),
    path("", include("inventory.urls")),
]
