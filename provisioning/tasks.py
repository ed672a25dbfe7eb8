"""Celery tasks of the provisioning queue: thin callers of the services, holding no logic of their own."""

from __future__ import annotations

from celery import shared_task

from provisioning.services import disks, requests


@shared_task(name="provisioning.tasks.run_provisioning")
def run_provisioning(op_id: int) -> None:
    requests.execute_provisioning(op_id)


@shared_task(name="provisioning.tasks.run_storage_operation")
def run_storage_operation(op_id: int) -> None:
    disks.execute_storage_operation(op_id)
