from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from headrace.authoring.context import RunInfo, RuntimeTI, build_context, call_with_context, make_jinja_env
from headrace.authoring.dag import DAG
from headrace.authoring.operators import EmptyOperator

UTC = UTC


class TI:
    dag_id = "d"
    task_id = "t"
    run_id = "r"
    try_number = 2
    max_tries = 3

    def xcom_push(self, key: str, value: Any) -> None: ...

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", dag_id: str | None = None) -> Any: ...

    def skip(self, task_ids: Any) -> None: ...


def make() -> dict[str, Any]:
    with DAG("d", params={"a": 1, "b": 2}) as dag:
        task = EmptyOperator(task_id="t")
    run = RunInfo(
        "d",
        "scheduled__2024-03-04T05:06:07+00:00",
        datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC),
        datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC),
        datetime(2024, 3, 5, 5, 6, 7, tzinfo=UTC),
        "scheduled",
        {"b": 20, "c": 30},
    )
    return build_context(dag, task, run, TI())


def test_build_context_keys_and_values() -> None:
    ctx = make()
    assert ctx["ds"] == "2024-03-04" and ctx["ds_nodash"] == "20240304"
    assert ctx["ts"] == "2024-03-04T05:06:07+00:00" and ctx["ts_nodash"] == "20240304T050607"
    assert ctx["run_id"] == "scheduled__2024-03-04T05:06:07+00:00"
    assert ctx["data_interval_end"] == datetime(2024, 3, 5, 5, 6, 7, tzinfo=UTC)
    assert ctx["params"] == {"a": 1, "b": 20, "c": 30}  # run conf overrides DAG params
    assert ctx["try_number"] == 2
    assert ctx["ti"] is ctx["task_instance"]
    assert ctx["dag_run"].run_type == "scheduled"
    assert isinstance(ctx["ti"], RuntimeTI)


def test_call_with_context_passes_only_named_keys() -> None:
    ctx = make()

    def f(x: int, ds: str, params: dict[str, Any]) -> tuple[int, str, int]:
        return x, ds, params["a"]

    assert call_with_context(f, [5], {}, ctx) == (5, "2024-03-04", 1)


def test_call_with_context_explicit_arguments_win_and_kwargs_get_all() -> None:
    ctx = make()

    def f(ds: str, **rest: Any) -> tuple[str, bool]:
        return ds, "ti" in rest and "ds" not in rest

    assert call_with_context(f, [], {"ds": "mine"}, ctx) == ("mine", True)
    assert call_with_context(lambda ds: ds, ["positional"], {}, ctx) == "positional"
    assert call_with_context(len, [[1, 2]], {}, ctx) == 2  # builtins without a signature


def test_jinja_env_is_strict_and_finds_files(tmp_path: Any) -> None:
    (tmp_path / "q.sql").write_text("select {{ 1 + 1 }}")
    env = make_jinja_env(searchpath=[str(tmp_path)])
    assert env.get_template("q.sql").render() == "select 2"
    try:
        env.from_string("{{ missing }}").render()
    except Exception as exc:  # noqa: BLE001
        assert "missing" in str(exc)
    else:
        raise AssertionError("StrictUndefined expected")


def test_datetimes_render_as_iso_like_airflow() -> None:
    env = make_jinja_env()
    when = datetime(2026, 2, 1, tzinfo=UTC)
    assert env.from_string("{{ d }} {{ d.year }}").render(d=when) == "2026-02-01T00:00:00+00:00 2026"
