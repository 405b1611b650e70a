"""``headrace assets list|events|materialize`` through the real command, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from headrace import DAG, Asset
from headrace.config import Settings
from headrace.db.assets import create_external_event
from headrace.db.engine import Database
from headrace.db.models import DagRun
from headrace.operators import EmptyOperator
from tests.cli.conftest import Cli
from tests.scheduler.conftest import store_dags

A = Asset(name="penguins", uri="s3://lake/penguins.csv")


def test_assets_commands(cli: Cli, db: Database, settings: Settings) -> None:
    with DAG("producer", schedule=None, start_date=datetime(2024, 1, 1)) as producer:
        EmptyOperator(task_id="make", outlets=[A, Asset("shared")])
    with DAG("other_producer", schedule=None, start_date=datetime(2024, 1, 1)) as other:
        EmptyOperator(task_id="make", outlets=[Asset("shared")])
    with DAG("consumer", schedule=[A]) as consumer:
        EmptyOperator(task_id="use")
    store_dags(settings, db, producer, other, consumer)
    with db.session() as session:
        create_external_event(session, uri=A.uri, name=None, extra={"rows": 344}, at=datetime.now(UTC))

    listed = cli("assets", "list")
    assert listed.code == 0, listed.err
    assert "s3://lake/penguins.csv" in listed.out and "producer.make" in listed.out and "consumer" in listed.out

    events = cli("assets", "events", "--uri", A.uri)
    assert events.code == 0, events.err
    assert "external" in events.out and "344" in events.out
    unknown = cli("assets", "events", "--uri", "s3://nope")
    assert unknown.code == 1 and "no asset with uri 's3://nope'" in unknown.err

    made = cli("assets", "materialize", "--name", "penguins")
    assert made.code == 0, made.err
    assert "created DAG run manual__" in made.out and "of producer" in made.out
    with db.read_session() as session:
        assert list(session.scalars(select(DagRun.dag_id))) == ["producer"]
    two = cli("assets", "materialize", "--uri", "shared")
    assert two.code == 1 and "produced by 2 DAGs (other_producer, producer)" in two.err
    assert cli("assets", "materialize").code == 1
