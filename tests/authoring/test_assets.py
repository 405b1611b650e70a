"""Asset, AssetAlias, AssetAll/AssetAny (Airflow 3's rules), asset schedules and their serialization,
outlets/inlets on tasks, @asset, and the context's outlet_events."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest

from headrace import DAG, Asset, AssetAlias, AssetAll, AssetAny, Dataset, asset, task
from headrace.authoring.asset_events import (
    AssetEventInfo,
    OutletEventAccessors,
    TriggeringAssetEvents,
    events_to_record,
)
from headrace.authoring.assets import AssetUniqueKey, asset_from_json, sanitize_uri
from headrace.dagfiles.serialization import SerializedDag, serialize_dag
from headrace.exceptions import DagDefinitionError, ScheduleError
from headrace.operators import EmptyOperator
from headrace.timetables import AssetOrTimeSchedule, AssetTriggeredTimetable, CronTriggerTimetable


def test_name_and_uri_default_to_each_other() -> None:
    assert (Asset("x").name, Asset("x").uri) == ("x", "x")
    assert (Asset(uri="s3://b/k").name, Asset(uri="s3://b/k").uri) == ("s3://b/k", "s3://b/k")
    a = Asset(name="clean", uri="s3://b/clean.csv", group="penguins", extra={"owner": "me"})
    assert (a.name, a.uri, a.group, a.extra) == ("clean", "s3://b/clean.csv", "penguins", {"owner": "me"})
    assert Dataset is Asset
    assert Asset("a") == Asset(name="a", uri="a") and Asset("a") != Asset(name="a", uri="b")
    assert len({Asset("a"), Asset("a")}) == 1


def test_uri_normalisation_and_validation() -> None:
    assert sanitize_uri("S3://bucket/key?b=2&a=1#part") == "s3://bucket/key?a=1&b=2"
    assert sanitize_uri("no scheme at all") == "no scheme at all"
    assert sanitize_uri("x-custom://Whatever#f") == "x-custom://Whatever#f"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Asset("postgres://user:pw@host:5432/db/schema/table").uri == "postgres://host:5432/db/schema/table"
    assert "auth info" in str(caught[0].message)
    with pytest.raises(ValueError, match="Asset scheme 'airflow' is reserved"):
        Asset("airflow://x")
    with pytest.raises(ValueError, match="ASCII"):
        Asset("s3://bücket/x")
    with pytest.raises(ValueError, match="cannot be empty"):
        Asset("")
    with pytest.raises(ValueError, match="cannot be just whitespace"):
        Asset("   ")
    with pytest.raises(ValueError, match="cannot exceed 1500 characters"):
        Asset("a" * 1501)
    with pytest.raises(TypeError, match="either 'name' or 'uri'"):
        Asset()
    with pytest.raises(ValueError, match="JSON-serializable"):
        Asset("a", extra={"when": datetime(2024, 1, 1)})


def test_conditions_evaluate_and_round_trip() -> None:
    a, b, c = Asset("a"), Asset("b"), Asset("c")
    cond = a | (b & c)
    assert isinstance(cond, AssetAny) and isinstance(cond.objects[1], AssetAll)
    key = AssetUniqueKey
    assert cond.evaluate({key("a", "a"): True})
    assert not cond.evaluate({key("b", "b"): True})
    assert cond.evaluate({key("b", "b"): True, key("c", "c"): True})
    assert [x.name for x in cond.iter_assets()] == ["a", "b", "c"]
    assert asset_from_json(cond.as_json()) == cond
    alias = AssetAlias("dyn")
    assert not alias.evaluate({key("a", "a"): True})
    assert alias.evaluate({key("a", "a"): True}, {"dyn": [key("a", "a")]})
    with pytest.raises(TypeError, match="assets, aliases and asset conditions only"):
        AssetAll(a, "b")  # type: ignore[arg-type]


def test_asset_schedules_serialize_and_need_no_start_date() -> None:
    a, b = Asset("s3://x/a"), Asset("s3://x/b")
    with DAG("on_list", schedule=[a, b]) as dag:
        EmptyOperator(task_id="t", outlets=[Asset("s3://x/c")], inlets=[a])
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert dag.timetable.asset_condition == AssetAll(a, b)
    sdag = SerializedDag.from_dict(serialize_dag(dag))
    assert sdag.timetable == dag.timetable and sdag.schedule == "Asset"
    assert sdag.get_task("t").outlets == (
        {"__type": "asset", "name": "s3://x/c", "uri": "s3://x/c", "group": "asset", "extra": {}},
    )
    assert [i["uri"] for i in sdag.get_task("t").inlets] == ["s3://x/a"]
    both = AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=a | b)
    with DAG("both", schedule=both, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag2:
        EmptyOperator(task_id="t")
    again = SerializedDag.from_dict(serialize_dag(dag2)).timetable
    assert isinstance(again, AssetOrTimeSchedule) and again.asset_condition == a | b
    assert again.summary == "Asset or 0 * * * *"
    with pytest.raises(ScheduleError, match="AssetOrTimeSchedule: assets"):
        AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[])


def test_lineage_must_be_assets() -> None:
    with DAG("bad", schedule=None), pytest.raises(DagDefinitionError, match="outlets must hold Asset or AssetAlias"):
        EmptyOperator(task_id="t", outlets=["s3://x"])
    with DAG("bad2", schedule=None), pytest.raises(ScheduleError, match="bad asset schedule"):
        DAG("bad3", schedule=[Asset("a"), "b"])


def test_outlet_events_become_the_events_to_record() -> None:
    a, alias = Asset("a", extra={"k": 1}), AssetAlias("dyn")
    accessors = OutletEventAccessors()
    accessors[a].extra = {"rows": 3}
    accessors[alias].add(Asset("c"), extra={"via": "alias"})
    with pytest.raises(TypeError, match="only an AssetAlias"):
        accessors[a].add(Asset("d"))
    events = events_to_record([a, alias], accessors)
    assert [(e["uri"], e["extra"], e["alias"], e["asset_extra"]) for e in events] == [
        ("a", {"rows": 3}, None, {"k": 1}),
        ("c", {"via": "alias"}, "dyn", {}),
    ]


def test_triggering_asset_events_by_asset_uri_or_name() -> None:
    raw = {"id": 1, "name": "n", "uri": "s3://u", "extra": {"x": 1}, "timestamp": "2024-01-01T00:00:00+00:00"}
    events = TriggeringAssetEvents([AssetEventInfo.from_dict(raw)])
    assert [e.extra for e in events[Asset(name="n", uri="s3://u")]] == [{"x": 1}]
    assert events["s3://u"] == events["n"] and events["other"] == []
    assert list(events) == [Asset(name="n", uri="s3://u")]


def test_asset_decorator_makes_a_one_task_dag() -> None:
    @asset(schedule="@daily", start_date=datetime(2024, 1, 1), uri="s3://penguins/clean.csv")
    def penguins_clean() -> int:
        return 1

    assert (penguins_clean.name, penguins_clean.uri) == ("penguins_clean", "s3://penguins/clean.csv")
    dag = penguins_clean.dag
    assert dag.dag_id == "penguins_clean" and list(dag.task_dict) == ["penguins_clean"]
    assert dag.task_dict["penguins_clean"].outlets == [penguins_clean]
    with DAG("downstream", schedule=[penguins_clean]) as consumer:

        @task
        def use() -> None: ...

        use()
    assert isinstance(consumer.timetable, AssetTriggeredTimetable)


def test_airflow_names_resolve_to_these() -> None:
    import headrace
    import headrace.timetables
    from headrace.compat.airflow_names import resolve

    assert resolve("airflow.sdk", "Asset") is headrace.Asset
    assert resolve("airflow.sdk", "asset") is headrace.asset
    assert resolve("airflow.datasets", "Dataset") is headrace.Asset
    assert resolve("airflow.datasets", "DatasetAlias") is headrace.AssetAlias
    assert resolve("airflow.sdk.definitions.asset", "AssetAny") is headrace.AssetAny
    assert resolve("airflow.timetables.assets", "AssetOrTimeSchedule") is headrace.timetables.AssetOrTimeSchedule
    assert resolve("airflow.timetables.datasets", "DatasetOrTimeSchedule") is AssetOrTimeSchedule
    assert resolve("airflow.timetables.simple", "AssetTriggeredTimetable") is AssetTriggeredTimetable
