"""Moved to :mod:`headrace.webapp` (it serves the UI too, which this package must not import).

Kept only until ``headrace/cli/scheduler.py`` and ``benchmarks/ui_pages.py``
import ``serve`` / ``start_in_thread`` from ``headrace.webapp``; then delete this
module and its ``ignore_imports`` line in ``pyproject.toml``.
"""

from __future__ import annotations

from headrace.webapp import RunningServer, bind, serve, start_in_thread, url_of

__all__ = ["RunningServer", "bind", "serve", "start_in_thread", "url_of"]
