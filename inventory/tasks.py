"""Celery tasks of the inventory: thin callers of the services, holding no logic of their own.

Discoveries and operations run as jobs (``vom.jobs.tasks.run_job``); only the schedule is here.
"""

from __future__ import annotations

from celery import shared_task

from inventory.services import discovery


@shared_task(name="inventory.tasks.dispatch_due_discoveries")
def dispatch_due_discoveries() -> int:
    return discovery.dispatch_due_discoveries()
