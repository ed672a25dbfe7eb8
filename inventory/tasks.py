"""Celery tasks: thin callers of the services, holding no logic of their own."""

from __future__ import annotations

from celery import shared_task

from inventory.services import discovery, operations


@shared_task(name="inventory.tasks.run_discovery")
def run_discovery(run_id: int) -> None:
    discovery.execute_discovery(run_id)


@shared_task(name="inventory.tasks.dispatch_due_discoveries")
def dispatch_due_discoveries() -> int:
    return discovery.dispatch_due_discoveries()


@shared_task(name="inventory.tasks.run_operation")
def run_operation(op_id: int) -> None:
    operations.execute_operation(op_id)
