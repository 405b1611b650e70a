"""Executors: hand tries to supervisors (sequentially, or through a fork server)."""

from __future__ import annotations
