from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from headrace.authoring.context import RunInfo
from headrace.authoring.dag import DAG
from headrace.authoring.decorators import dag, infer_multiple_outputs, task, unique_task_id
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.xcom import XComArg


def test_task_inside_dag_returns_xcomarg_and_passes_values(runner: Any) -> None:
    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task(retries=2, memory_limit="1GiB")
    def total(numbers: list[int], offset: int = 0) -> int:
        return sum(numbers) + offset

    with DAG("d") as d:
        ref = extract()
        out = total(ref, offset=10)
    assert isinstance(ref, XComArg) and ref.operator.task_id == "extract"
    t = d.get_task("total")
    assert t.upstream_task_ids == {"extract"}
    assert (t.retries, t.memory_limit, t.operator_name) == (2, 2**30, "@task")
    r = runner(d)
    r.run_all()
    assert r.pull("total") == 16
    assert out.operator is t


def test_xcomargs_nested_in_lists_and_dicts(runner: Any) -> None:
    @task
    def one() -> int:
        return 1

    @task
    def two() -> int:
        return 2

    @task
    def combine(values: list[int], named: dict[str, Any]) -> int:
        return sum(values) + named["x"] * 100

    with DAG("d") as d:
        a, b = one(), two()
        combine([a, b], {"x": a})
    assert d.get_task("combine").upstream_task_ids == {"one", "two"}
    r = runner(d)
    r.run_all()
    assert r.pull("combine") == 103


def test_task_ids_are_deduplicated_like_airflow() -> None:
    @task
    def step() -> None:
        return None

    with DAG("d") as d:
        step()
        step()
        step()
        step.override(task_id="step__7")()
        step()
    assert d.task_ids == ["step", "step__1", "step__2", "step__7", "step__8"]
    assert unique_task_id(None, "x") == "x"


def test_multiple_outputs_inferred_and_explicit(runner: Any) -> None:
    @task
    def stats() -> dict[str, int]:
        return {"rows": 3, "cols": 2}

    @task(multiple_outputs=False)
    def not_split() -> dict[str, int]:
        return {"a": 1}

    @task
    def use(rows: int) -> int:
        return rows * 10

    with DAG("d") as d:
        s = stats()
        not_split()
        use(s["rows"])
    assert d.get_task("stats").multiple_outputs is True
    assert d.get_task("not_split").multiple_outputs is False
    r = runner(d)
    r.run_all()
    assert r.pull("stats", "rows") == 3 and r.pull("stats") == {"rows": 3, "cols": 2}
    assert r.pull("not_split", "a") is None
    assert r.pull("use") == 30


def test_infer_multiple_outputs_from_annotations() -> None:
    def a() -> dict[str, int]: ...
    def b() -> dict: ...  # type: ignore[type-arg]
    def c() -> list[int]: ...
    def d():  # type: ignore[no-untyped-def]
        ...

    assert [infer_multiple_outputs(f) for f in (a, b, c, d)] == [True, True, False, False]


def test_task_gets_context_keys_it_names(runner: Any) -> None:
    @task
    def info(x: int, ds: str | None = None, ti: Any = None) -> str:
        return f"{x}-{ds}-{ti.task_id}"

    with DAG("d") as d:
        info(5)
    assert runner(d).run_task("info") == "5-2024-01-02-info"


def test_wrong_arguments_raise_type_error() -> None:
    @task
    def f(a: int) -> int:
        return a

    with DAG("d"):
        with pytest.raises(TypeError, match="f\\(\\)"):
            f(1, 2)  # type: ignore[call-arg]


def test_xcomarg_dependencies_with_shift() -> None:
    @task
    def a() -> None: ...

    with DAG("d") as d:
        start = EmptyOperator(task_id="start")
        ref = a()
        start >> ref >> EmptyOperator(task_id="end")
    assert d.get_task("a").upstream_task_ids == {"start"}
    assert d.get_task("a").downstream_task_ids == {"end"}


def test_task_branch_and_short_circuit(runner: Any) -> None:
    @task.branch
    def pick() -> str:
        return "yes"

    @task.short_circuit()
    def gate() -> bool:
        return False

    with DAG("d") as d:
        p = pick()
        p >> [EmptyOperator(task_id="yes"), EmptyOperator(task_id="no")]
        g = gate()
        g >> EmptyOperator(task_id="x") >> EmptyOperator(task_id="y")
    assert d.get_task("pick").operator_name == "@task.branch"
    r = runner(d)
    r.run_task("pick")
    r.run_task("gate")
    assert r.skipped == {"no", "x", "y"}


def test_operator_kwargs_pass_through_and_default_args() -> None:
    @task(queue="gpu", pool="p", trigger_rule="all_done")
    def t() -> None: ...

    with DAG("d", default_args={"retries": 4}) as d:
        t()
    op = d.get_task("t")
    assert (op.queue, op.pool, op.trigger_rule.value, op.retries) == ("gpu", "p", "all_done", 4)


def test_dag_decorator_with_and_without_arguments(runner: Any) -> None:
    @dag
    def bare() -> None:
        EmptyOperator(task_id="e")

    @dag(schedule="@daily", start_date=datetime(2024, 1, 1), tags=["x"])
    def with_args(n: int = 3, word: str = "hi") -> None:
        """The DAG's docs."""

        @task
        def show(n: int, word: str) -> str:
            return word * n

        show(n, word)

    b = bare()
    assert isinstance(b, DAG) and b.dag_id == "bare" and b.task_ids == ["e"]
    w = with_args(word="ho")
    assert w.dag_id == "with_args" and w.params == {"n": 3, "word": "ho"}
    assert w.doc_md == "The DAG's docs." and w.tags == ["x"]
    assert w.fileloc == __file__
    assert runner(w).run_task("show") == "hohoho"
    conf_run = RunInfo(
        "with_args",
        "r",
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 2, tzinfo=UTC),
        conf={"n": 1},
    )
    assert runner(w, conf_run).run_task("show") == "ho"


def test_dag_decorator_with_explicit_id() -> None:
    @dag("custom_id")
    def whatever() -> None: ...

    @dag(dag_id="other")
    def whatever2() -> None: ...

    assert whatever().dag_id == "custom_id"
    assert whatever2().dag_id == "other"


def test_task_function_keeps_the_plain_function() -> None:
    @task
    def double(x: int) -> int:
        """Double it."""
        return 2 * x

    assert double.function(4) == 8
    assert double.__doc__ == "Double it."
    with DAG("d") as d:
        double(1)
    assert d.get_task("double").doc_md == "Double it."


def test_task_python_is_task_and_a_missing_variant_is_named() -> None:
    """``@task.python`` is Airflow's other spelling of ``@task``; a provider's decorator is refused by name."""
    assert task.python is task
    with DAG("task_python", schedule=None) as d:

        @task.python(multiple_outputs=True)
        def split() -> dict[str, int]:
            return {"a": 1}

        split()
    assert d.task_dict["split"].multiple_outputs is True
    with pytest.raises(AttributeError, match=r"@task\.docker: headrace does not support this task decorator"):
        task.docker  # noqa: B018 - the lookup is what is tested
