"""The provisioning part of the REST API (registered on the project's router by ``vom.api_urls``)."""

from rest_framework.routers import BaseRouter


def register(router: BaseRouter) -> None:
    pass
