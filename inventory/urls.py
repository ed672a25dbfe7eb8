"""URLs of the browser GUI (the API lives under /api/, see inventory.api.urls)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from inventory.views import dashboard, hosts, providers, storage, vms

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.dashboard, name="dashboard"),
    path("providers/", providers.provider_list, name="provider-list"),
    path("providers/add/", providers.provider_add, name="provider-add"),
    path("providers/<int:pk>/", providers.provider_detail, name="provider-detail"),
    path("providers/<int:pk>/edit/", providers.provider_edit, name="provider-edit"),
    path("providers/<int:pk>/delete/", providers.provider_delete, name="provider-delete"),
    path("providers/<int:pk>/discover/", providers.provider_discover, name="provider-discover"),
    path("providers/<int:pk>/check/", providers.provider_check, name="provider-check"),
    path("discoveries/<int:pk>/", providers.discovery_detail, name="discovery-detail"),
    path("hosts/", hosts.host_list, name="host-list"),
    path("hosts/<int:pk>/", hosts.host_detail, name="host-detail"),
    path("vms/", vms.vm_list, name="vm-list"),
    path("vms/bulk-action/", vms.vm_bulk_action, name="vm-bulk-action"),
    path("vms/<int:pk>/", vms.vm_detail, name="vm-detail"),
    path("vms/<int:pk>/action/", vms.vm_action, name="vm-action"),
    path("storage/pools/", storage.pool_list, name="pool-list"),
    path("storage/pools/<int:pk>/", storage.pool_detail, name="pool-detail"),
    path("storage/volumes/", storage.volume_list, name="volume-list"),
    path("networks/", storage.network_list, name="network-list"),
]
