"""core.dags_are_paused_at_creation and is_paused_upon_creation (Airflow's), and dag_display_name, through the
DAG processor into the metadata DB and the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from headrace import DAG
from headrace.config import Settings, load_settings
from headrace.dagfiles.processor import DagProcessor
from headrace.db.engine import Database
from headrace.db.models import DagModel
from headrace.exceptions import DagDefinitionError

DAGS = """
from headrace import DAG
from headrace.operators import EmptyOperator

with DAG("plain"):
    EmptyOperator(task_id="t")
with DAG("starts_active", is_paused_upon_creation=False, dag_display_name="Starts active ✓"):
    EmptyOperator(task_id="t")
with DAG("starts_paused", is_paused_upon_creation=True):
    EmptyOperator(task_id="t")
"""


def _parse(settings: Settings, db: Database) -> dict[str, DagModel]:
    (settings.dags_folder / "dags.py").write_text(textwrap.dedent(DAGS))
    assert DagProcessor(settings, db).refresh(datetime.now(UTC)).errors == 0
    with db.session() as session:
        return {d.dag_id: d for d in session.scalars(select(DagModel))}


@pytest.mark.parametrize("paused_at_creation", [True, False])
def test_new_dags_start_paused_by_default_unless_they_say(
    settings: Settings, db: Database, paused_at_creation: bool
) -> None:
    settings = settings.with_overrides({"core": {"dags_are_paused_at_creation": paused_at_creation}})
    plain_paused = paused_at_creation
    dags = _parse(settings, db)
    assert {d: m.is_paused for d, m in dags.items()} == {
        "plain": plain_paused,
        "starts_active": False,
        "starts_paused": True,
    }
    assert (dags["starts_active"].dag_display_name, dags["plain"].dag_display_name) == ("Starts active ✓", None)


def test_the_default_is_airflows_and_a_reparsed_dag_keeps_the_pause_a_user_set(
    settings: Settings, db: Database
) -> None:
    assert load_settings({"HEADRACE_HOME": str(settings.home)}).get_bool("core", "dags_are_paused_at_creation")
    _parse(settings, db)
    with db.session() as session:
        dag = session.get(DagModel, "starts_active")
        assert dag is not None
        dag.is_paused = True
    (settings.dags_folder / "dags.py").write_text(textwrap.dedent(DAGS) + "\n# changed\n")
    DagProcessor(settings, db).refresh(datetime.now(UTC))
    with db.session() as session:
        assert session.get(DagModel, "starts_active").is_paused is True  # type: ignore[union-attr]


def test_bad_values_are_refused_naming_the_argument() -> None:
    with pytest.raises(DagDefinitionError, match="is_paused_upon_creation must be"):
        DAG("x", is_paused_upon_creation="yes")  # type: ignore[arg-type]
    with pytest.raises(DagDefinitionError, match="dag_display_name must be a non-empty string"):
        DAG("y", dag_display_name="  ")
    assert DAG("z").dag_display_name == "z"
