"""The provisioning part of the REST API (registered on the project's router by ``vom.api_urls``)."""

from rest_framework.routers import BaseRouter

from provisioning.api import views


def register(router: BaseRouter) -> None:
    router.register("golden-images", views.GoldenImageViewSet, basename="goldenimage")
    router.register("provisioning-requests", views.ProvisioningRequestViewSet, basename="provisioningrequest")
    router.register("vms-from-volume", views.VMFromVolumeViewSet, basename="vmfromvolume")
    router.register("storage-savings", views.PoolSavingsViewSet, basename="poolsavings")
    router.register("data-disks", views.DataDiskViewSet, basename="datadisk")
    router.register("disk-resizes", views.DiskResizeViewSet, basename="diskresize")
    router.register("volume-clones", views.VolumeCloneViewSet, basename="volumeclone")
