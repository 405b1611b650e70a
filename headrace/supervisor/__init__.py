"""The supervisor: runs one try of a task instance in a watched child process.

``supervise(settings, store, request)`` (in :mod:`headrace.supervisor.supervise`)
claims the try, starts the task process, enforces its limits, answers its
requests and records the outcome; every metadata read and write goes through
``store`` (:class:`~headrace.supervisor.store.TryStore`, on the database:
:class:`~headrace.supervisor.sql_store.SqlTryStore`). ``python -m headrace.supervisor '<json>'``
does the same from a command line.
"""

from __future__ import annotations
