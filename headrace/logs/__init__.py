"""Per-try log files: where they live and how they are written and read."""

from __future__ import annotations
