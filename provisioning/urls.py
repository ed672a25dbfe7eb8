"""URLs of the provisioning pages of the browser GUI (under /provisioning/)."""

from django.urls import path

from provisioning.views import golden_images, requests, savings, storage

urlpatterns = [
    path("golden-images/", golden_images.golden_image_list, name="golden-image-list"),
    path("golden-images/add/", golden_images.golden_image_add, name="golden-image-add"),
    path("golden-images/<int:pk>/", golden_images.golden_image_detail, name="golden-image-detail"),
    path("golden-images/<int:pk>/provision/", golden_images.golden_image_provision, name="golden-image-provision"),
    path("golden-images/<int:pk>/delete/", golden_images.golden_image_delete, name="golden-image-delete"),
    path("requests/", requests.request_list, name="provisioning-request-list"),
    path("requests/<int:pk>/", requests.request_detail, name="provisioning-request-detail"),
    path("requests/<int:pk>/cancel/", requests.request_cancel, name="provisioning-request-cancel"),
    path("savings/", savings.storage_savings, name="storage-savings"),
    path("savings/pools/<int:pk>/", savings.pool_savings_detail, name="storage-savings-pool"),
    path("vms/<int:pk>/disks/add/", storage.vm_disk_add, name="vm-disk-add"),
    path("vms/<int:pk>/disks/<int:disk_pk>/resize/", storage.vm_disk_resize, name="vm-disk-resize"),
    path("volumes/<int:pk>/clone/", storage.volume_clone, name="volume-clone"),
    path("volumes/<int:pk>/new-vm/", storage.volume_new_vm, name="volume-new-vm"),
]
