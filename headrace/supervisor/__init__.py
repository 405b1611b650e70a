"""The supervisor: runs one try of a task instance in a watched child process.

``supervise(settings, db, request)`` (in :mod:`headrace.supervisor.supervise`)
claims the try, starts the task process, enforces its limits, answers its
requests and records the outcome. ``python -m headrace.supervisor '<json>'``
does the same from a command line.
"""

from __future__ import annotations
