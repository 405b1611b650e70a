"""scheduler.catchup_by_default: the catchup of DAGs that do not set it, applied when their file is parsed."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from headrace.authoring.dag import DAG
from headrace.config import Settings
from headrace.dagfiles.processor import DagProcessor
from headrace.dagfiles.serialization import serialize_dag
from headrace.db.engine import Database
from headrace.db.models import DagModel

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

DAGS = """
from datetime import datetime
from headrace import DAG
from headrace.operators import EmptyOperator

for dag_id, catchup in (("unset", None), ("off", False), ("on", True)):
    with DAG(dag_id, schedule="@daily", start_date=datetime(2024, 1, 1), catchup=catchup):
        EmptyOperator(task_id="a")
"""


def test_serialize_dag_applies_the_default_only_where_unset() -> None:
    assert serialize_dag(DAG("unset"))["catchup"] is False  # Airflow 3's default
    assert serialize_dag(DAG("unset"), catchup_default=True)["catchup"] is True
    assert serialize_dag(DAG("off", catchup=False), catchup_default=True)["catchup"] is False
    assert serialize_dag(DAG("on", catchup=True))["catchup"] is True


@pytest.mark.parametrize("by_default", [False, True])
def test_the_setting_decides_for_dags_that_do_not_set_catchup(
    settings: Settings, db: Database, by_default: bool
) -> None:
    settings = settings.with_overrides({"scheduler": {"catchup_by_default": by_default}})
    (settings.dags_folder / "dags.py").write_text(textwrap.dedent(DAGS))
    DagProcessor(settings, db).refresh(NOW)
    first = datetime(2024, 1, 1, tzinfo=UTC)  # catchup: from start_date
    latest = datetime(2024, 3, 1, tzinfo=UTC)  # no catchup: the latest fire time at or before now (Airflow 3)
    with db.session() as session:
        next_dates = {d: session.get(DagModel, d).next_logical_date for d in ("unset", "off", "on")}  # type: ignore[union-attr]
    assert next_dates == {"unset": first if by_default else latest, "off": latest, "on": first}
