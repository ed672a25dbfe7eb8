"""Counting the inventory rows a benchmark run writes."""

from __future__ import annotations

from typing import Any


class WriteCounter:
    """Counts INSERT/UPDATE/DELETE statements on inventory tables (not the discovery's own job rows, its
    log, or the provider's "last discovered")."""

    RUN_TABLES = ('"jobs_job"', '"jobs_joblogentry"', '"inventory_provider"')

    def __init__(self) -> None:
        self.writes = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.lstrip().split(" ", 1)[0].upper()
        if verb in {"INSERT", "UPDATE", "DELETE"} and not any(t in sql for t in self.RUN_TABLES):
            self.writes += 1
        return execute(sql, params, many, context)
