"""The job core: every long-running unit of work of every app, with one lifecycle.

- ``models``: :class:`Job` and its log lines;
- ``kinds``: the registry each app fills with its kinds (label, queue, executor);
- ``lifecycle``: create, submit (enqueue on commit), claim, wait, finish, cancel, expire;
- ``runner``: one step of a job (the Celery task's only call), or a whole job in this process;
- ``broker``: the only place that hands steps to Celery; ``heartbeat``: the worker's sign of life.
"""
