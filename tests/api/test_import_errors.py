"""``/api/v1/importErrors``: DAG files that failed to import."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from tests.api.conftest import ClientAs
from tests.integration.helpers import write_dag


def test_import_errors(client_as: ClientAs, anon: TestClient, settings: Settings, db: Database) -> None:
    write_dag(settings, "broken.py", "from headrace import DAG\n\nraise ValueError('no good')\n")
    write_dag(settings, "typo.py", "from headrace import DAG\ndef f(:\n")
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 2
    viewer = client_as("viewer")
    body = viewer.get("/api/v1/importErrors").json()
    assert body["total_entries"] == 2
    broken, typo = body["import_errors"]
    assert broken["fileloc"].endswith("broken.py") and "no good" in broken["message"]
    assert "ValueError: no good" in broken["stacktrace"] and "broken.py" in broken["stacktrace"]
    assert typo["fileloc"].endswith("typo.py") and typo["lineno"] == 2 and typo["timestamp"]
    assert viewer.get(f"/api/v1/importErrors/{broken['id']}").json() == broken
    page = viewer.get("/api/v1/importErrors", params={"limit": 1, "offset": 1}).json()
    assert page["import_errors"] == [typo] and page["total_entries"] == 2
    assert viewer.get("/api/v1/importErrors/999999").status_code == 404
    assert viewer.get("/api/v1/importErrors/abc").status_code == 422
    assert anon.get("/api/v1/importErrors").status_code == 401
