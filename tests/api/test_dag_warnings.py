"""``/api/v1/dagWarnings``: the warnings the DAG processor stored, filtered, ordered and in pages."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import update

from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from tests.api.conftest import ClientAs
from tests.api.test_dags import WARNED, WARNED_MESSAGES
from tests.integration.helpers import write_dag

ALSO_WARNED = """
    from headrace import DAG
    from headrace.operators import EmptyOperator

    with DAG("also_warned"):
        EmptyOperator(task_id="t", sla=60, run_as_user="etl")
"""


def _parse(settings: Settings, db: Database) -> None:
    write_dag(settings, "warned.py", WARNED)
    write_dag(settings, "also_warned.py", ALSO_WARNED)
    write_dag(
        settings,
        "clean.py",
        "from headrace import DAG\nfrom headrace.operators import EmptyOperator\n\n"
        'with DAG("clean"):\n    EmptyOperator(task_id="t")\n',
    )
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0


def test_list_filter_order_and_page(client_as: ClientAs, anon: TestClient, settings: Settings, db: Database) -> None:
    _parse(settings, db)
    viewer = client_as("viewer")
    body = viewer.get("/api/v1/dagWarnings").json()
    assert body["total_entries"] == 5
    assert [(w["dag_id"], w["message"]) for w in body["dag_warnings"]] == [
        (
            "also_warned",
            "task 't': argument 'run_as_user' is an Airflow operator argument headrace does not "
            "support yet; it is ignored",
        ),
        (
            "also_warned",
            "task 't': argument 'sla' is an Airflow operator argument headrace does not support yet; it is ignored",
        ),
    ] + [("warned", m) for m in WARNED_MESSAGES]  # by dag_id, then in parse order
    first = body["dag_warnings"][0]
    assert set(first) == {"dag_id", "warning_type", "message", "timestamp"}
    assert first["warning_type"] == "unsupported_argument" and first["timestamp"]

    mine = viewer.get("/api/v1/dagWarnings", params={"dag_id": "warned"}).json()
    assert [w["message"] for w in mine["dag_warnings"]] == WARNED_MESSAGES and mine["total_entries"] == 3
    unused = viewer.get("/api/v1/dagWarnings", params={"warning_type": "unused_default_arg"}).json()
    assert [w["message"] for w in unused["dag_warnings"]] == [WARNED_MESSAGES[1]] and unused["total_entries"] == 1
    both = viewer.get("/api/v1/dagWarnings", params={"dag_id": "also_warned", "warning_type": "unused_default_arg"})
    assert both.json() == {"dag_warnings": [], "total_entries": 0}
    assert viewer.get("/api/v1/dagWarnings", params={"dag_id": "clean"}).json()["total_entries"] == 0
    assert viewer.get("/api/v1/dagWarnings", params={"dag_id": "nope"}).json()["total_entries"] == 0

    desc = viewer.get("/api/v1/dagWarnings", params={"order_by": "-dag_id"}).json()["dag_warnings"]
    assert [w["dag_id"] for w in desc] == ["warned"] * 3 + ["also_warned"] * 2
    by_type = viewer.get("/api/v1/dagWarnings", params={"order_by": "-warning_type"}).json()["dag_warnings"]
    assert by_type[0]["warning_type"] == "unused_default_arg"
    page = viewer.get("/api/v1/dagWarnings", params={"limit": 2, "offset": 1}).json()
    assert [w["message"] for w in page["dag_warnings"]] == [body["dag_warnings"][1]["message"], WARNED_MESSAGES[0]]
    assert page["total_entries"] == 5

    with db.session() as session:  # an inactive DAG's warnings are not listed
        session.execute(update(DagModel).where(DagModel.dag_id == "warned").values(is_active=False))
    assert viewer.get("/api/v1/dagWarnings").json()["total_entries"] == 2
    assert anon.get("/api/v1/dagWarnings").status_code == 401


def test_bad_filters_are_refused(api: TestClient) -> None:
    for params in (
        {"warning_type": "nope"},
        {"order_by": "colour"},
        {"limit": 0},
        {"offset": -1},
        {"dag_id": "x" * 251},
    ):
        r = api.get("/api/v1/dagWarnings", params=params)
        assert r.status_code == 422, params
    assert api.get("/api/v1/dagWarnings", params={"limit": 5000}).json()["error"] == "InvalidRequest"
    nul = api.get("/api/v1/dagWarnings", params={"dag_id": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["error"] == "InvalidRequest"
