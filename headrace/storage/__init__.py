"""Object storage at fsspec URLs: where remote try logs and large XCom values live (see docs/remote-logs.md)."""

from __future__ import annotations
