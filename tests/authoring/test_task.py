from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from headrace.authoring.dag import DAG
from headrace.authoring.operators import BashOperator, EmptyOperator, PythonOperator
from headrace.authoring.task import BaseOperator, chain, parse_memory_limit
from headrace.authoring.trigger_rules import TriggerRule
from headrace.exceptions import DagDefinitionError
from headrace.types import Context


class Echo(BaseOperator):
    template_fields = ("message", "items", "mapping", "number")

    def __init__(
        self, *, message: Any = "", items: Any = None, mapping: Any = None, number: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.message, self.items, self.mapping, self.number = message, items, mapping, number

    def execute(self, context: Context) -> Any:
        return self.message


def test_defaults_are_airflows() -> None:
    t = EmptyOperator(task_id="t")
    assert t.dag is None
    assert (t.retries, t.retry_delay, t.retry_exponential_backoff) == (0, timedelta(seconds=300), False)
    assert t.trigger_rule is TriggerRule.ALL_SUCCESS
    assert (t.pool, t.pool_slots, t.priority_weight, t.queue) == ("default_pool", 1, 1, "default")
    assert t.memory_limit is None and t.execution_timeout is None and t.max_retry_delay is None


def test_numbers_of_seconds_are_accepted_for_durations() -> None:
    t = EmptyOperator(task_id="t", retry_delay=10, execution_timeout=2.5, max_retry_delay=60)
    assert t.retry_delay == timedelta(seconds=10)
    assert t.execution_timeout == timedelta(seconds=2.5)
    assert t.max_retry_delay == timedelta(minutes=1)


def test_bad_arguments() -> None:
    with pytest.raises(DagDefinitionError, match="retries"):
        EmptyOperator(task_id="t", retries=-1)
    with pytest.raises(DagDefinitionError, match="unknown trigger_rule 'sometimes'"):
        EmptyOperator(task_id="t", trigger_rule="sometimes")
    with pytest.raises(DagDefinitionError, match="retry_delay"):
        EmptyOperator(task_id="t", retry_delay="5m")  # type: ignore[arg-type]
    with pytest.raises(DagDefinitionError, match="invalid arguments were passed to EmptyOperator.*colour"):
        EmptyOperator(task_id="t", colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1024, 1024),
        ("100", 100),
        ("512MiB", 512 * 2**20),
        ("512Mi", 512 * 2**20),
        ("512M", 512 * 2**20),
        ("2GB", 2_000_000_000),
        ("1.5GiB", 1610612736),
        ("1.5 gib", 1610612736),
        ("64kb", 64_000),
        ("1TiB", 2**40),
    ],
)
def test_memory_limit_parsing(value: Any, expected: int | None) -> None:
    assert parse_memory_limit(value) == expected
    if value is not None:
        assert EmptyOperator(task_id="t", memory_limit=value).memory_limit == expected


@pytest.mark.parametrize("bad", ["lots", "12 parsecs", "-5MiB", "0", 0, -1, "1.5.2GB", True, 3.5])
def test_bad_memory_limits(bad: Any) -> None:
    with pytest.raises(DagDefinitionError, match="memory_limit"):
        EmptyOperator(task_id="t", memory_limit=bad)


def test_retry_delay_without_backoff_is_constant() -> None:
    t = EmptyOperator(task_id="t", retry_delay=30)
    assert [t.retry_delay_for(n) for n in (1, 2, 5)] == [30.0, 30.0, 30.0]


def test_exponential_backoff_formula_and_cap() -> None:
    t = EmptyOperator(task_id="t", retry_delay=10, retry_exponential_backoff=True, max_retry_delay=100)
    # retry_delay * 2 ** (try_number - 1), capped at max_retry_delay
    assert [t.retry_delay_for(n) for n in (1, 2, 3, 4, 5, 1000)] == [10, 20, 40, 80, 100, 100]


def test_exponential_backoff_default_cap_is_a_day() -> None:
    t = EmptyOperator(task_id="t", retry_delay=60, retry_exponential_backoff=True)
    assert t.retry_delay_for(30) == 24 * 3600


def test_default_args_apply_unless_the_task_sets_them() -> None:
    with DAG("d", default_args={"retries": 3, "owner": "ana", "bash_command": "echo hi", "nonsense": 1}):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b", retries=1)
        c = BashOperator(task_id="c")
    assert (a.retries, a.owner, b.retries, b.owner) == (3, "ana", 1, "ana")
    assert c.bash_command == "echo hi"  # subclass arguments are filled too


def test_explicit_dag_argument() -> None:
    dag = DAG("d", default_args={"queue": "gpu"})
    t = EmptyOperator(task_id="t", dag=dag)
    assert t.dag is dag and dag.get_task("t") is t and t.queue == "gpu"


def test_shift_operators() -> None:
    with DAG("d"):
        a, b, c, d = (EmptyOperator(task_id=t) for t in "abcd")
        assert (a >> b) is b
        assert (c << b) is b
        [a, b] >> d  # __rrshift__
    assert a.downstream_task_ids == {"b", "d"}
    assert b.upstream_task_ids == {"a"} and c.upstream_task_ids == {"b"}
    assert d.upstream_task_ids == {"a", "b"}


def test_rlshift_with_list_and_set_methods() -> None:
    with DAG("d"):
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        [a, b] << c
        c.set_upstream(EmptyOperator(task_id="z"))
    assert a.upstream_task_ids == {"c"} and b.upstream_task_ids == {"c"}
    assert c.upstream_task_ids == {"z"}
    assert [t.task_id for t in c.downstream_list] == ["a", "b"]


def test_tasks_of_different_dags_cannot_be_related() -> None:
    with DAG("one"):
        a = EmptyOperator(task_id="a")
    with DAG("two"):
        b = EmptyOperator(task_id="b")
    with pytest.raises(DagDefinitionError, match="different DAGs"):
        a >> b


def test_a_task_without_dag_joins_the_other_tasks_dag() -> None:
    with DAG("d") as dag:
        a = EmptyOperator(task_id="a")
    loose = EmptyOperator(task_id="loose")
    a >> loose
    assert loose.dag is dag and dag.has_task("loose")


def test_chain_with_lists() -> None:
    with DAG("d"):
        a, b, c, d, e, f = (EmptyOperator(task_id=t) for t in "abcdef")
        chain(a, [b, c], [d, e], f)
    assert a.downstream_task_ids == {"b", "c"}
    assert b.downstream_task_ids == {"d"} and c.downstream_task_ids == {"e"}
    assert f.upstream_task_ids == {"d", "e"}


def test_chain_lists_of_different_length() -> None:
    with DAG("d"):
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        with pytest.raises(DagDefinitionError, match="different lengths"):
            chain([a, b], [c])


def test_render_template_fields_recursively() -> None:
    with DAG("d"):
        t = Echo(
            task_id="t",
            message="day {{ ds }}",
            items=["{{ x }}", ("{{ x }}!", 3)],
            mapping={"k": "{{ x * 2 }}", "n": 5},
            number=7,
        )
    t.render_template_fields({"ds": "2024-01-01", "x": 21})
    assert t.message == "day 2024-01-01"
    assert t.items == ["21", ("21!", 3)]
    assert t.mapping == {"k": "42", "n": 5}
    assert t.number == 7


def test_undefined_template_variable_names_the_field() -> None:
    with DAG("d"):
        t = Echo(task_id="t", message="{{ nope }}")
    with pytest.raises(DagDefinitionError, match="template field 'message' of task 't'.*'nope' is undefined"):
        t.render_template_fields({})


def test_template_file_by_extension(tmp_path: Any) -> None:
    (tmp_path / "run.sh").write_text("echo {{ params.word }}\n")
    with DAG("d", template_searchpath=str(tmp_path), params={"word": "hello"}):
        t = BashOperator(task_id="t", bash_command="run.sh")
    t.render_template_fields({"params": {"word": "hello"}})
    assert t.bash_command == "echo hello\n"


def test_python_callable_must_be_callable() -> None:
    with pytest.raises(DagDefinitionError, match="python_callable must be callable"):
        PythonOperator(task_id="t", python_callable=3)  # type: ignore[arg-type]


def test_callbacks_are_lists() -> None:
    def cb(context: Context) -> None:
        return None

    t = EmptyOperator(task_id="t", on_failure_callback=cb, on_retry_callback=[cb, cb])
    assert t.on_failure_callback == [cb] and len(t.on_retry_callback) == 2 and t.on_success_callback == []


def test_base_operator_is_abstract() -> None:
    with pytest.raises(TypeError):
        BaseOperator(task_id="t")  # type: ignore[abstract]
