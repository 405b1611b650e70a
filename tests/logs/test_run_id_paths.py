"""Run ids that differ only where a plain path would collapse them (``coll/a`` vs ``coll_a``) keep their own logs.

Real scheduler (LocalExecutor, real supervisors) writing the logs, real HTTP server (uvicorn) serving them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx

from headrace.api.users import create_token, create_user
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.scheduler.runs import trigger_dag
from headrace.webapp import start_in_thread
from tests.api.conftest import PASSWORD
from tests.integration.helpers import FAST, run_scheduler_until_done, write_dag

DAG = """
    from headrace import DAG
    from headrace.operators import PythonOperator

    def say(**context):
        print("this is run", context["run_id"], flush=True)

    with DAG("coll"):
        PythonOperator(task_id="say", python_callable=say)
"""

RUN_IDS = ["coll/a", "coll_a", "coll%2Fa", "coll a"]


def test_each_run_serves_its_own_log(settings: Settings, db: Database) -> None:
    fast = settings.with_overrides(FAST)
    write_dag(fast, "coll.py", DAG)
    assert DagProcessor(fast, db).refresh(datetime.now(UTC)).errors == 0
    now = datetime.now(UTC)
    with db.session() as session:
        for i, run_id in enumerate(RUN_IDS):
            trigger_dag(session, "coll", run_id=run_id, logical_date=now - timedelta(minutes=i), now=now)
        user = create_user(session, "reader", PASSWORD, "viewer", now=now)
        token, _ = create_token(session, user, "t", now=now)
    run_scheduler_until_done(fast, db)

    server = start_in_thread(fast, db, host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for run_id in RUN_IDS:
                url = f"/api/v1/dags/coll/dagRuns/{quote(run_id, safe='')}/taskInstances/say/logs/1"
                answer = client.get(url)
                assert answer.status_code == 200, (run_id, answer.text)
                said = [line for line in answer.json()["content"].splitlines() if "this is run" in line]
                assert said == [f"this is run {run_id}"], (run_id, said)
    finally:
        server.stop()
