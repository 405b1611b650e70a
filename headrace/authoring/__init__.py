"""Authoring: how DAGs, tasks and their schedules are written.

Pure Python: imports only the standard library, jinja2, croniter and
``headrace.states`` / ``headrace.exceptions`` / ``headrace.types``. Nothing here
touches the metadata database, the configuration or a process.
"""

from __future__ import annotations
