from __future__ import annotations

from typing import Any

import pytest

from headrace.authoring.dag import DAG
from headrace.authoring.operators import (
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from headrace.exceptions import SkipTask


def test_empty_operator_returns_nothing(runner: Any) -> None:
    with DAG("d") as dag:
        EmptyOperator(task_id="e")
    assert runner(dag).run_task("e") is None


def test_python_operator_args_kwargs_and_context(runner: Any, capsys: Any) -> None:
    seen: dict[str, Any] = {}

    def work(a: int, b: int, *, scale: int, ds: str, ti: Any) -> int:
        seen.update(ds=ds, task_id=ti.task_id)
        return (a + b) * scale

    with DAG("d") as dag:
        PythonOperator(task_id="p", python_callable=work, op_args=[1, 2], op_kwargs={"scale": 10})
    r = runner(dag)
    assert r.run_task("p") == 30
    assert r.pull("p") == 30
    assert seen == {"ds": "2024-01-02", "task_id": "p"}
    assert "Returned value was: 30" in capsys.readouterr().out


def test_python_operator_with_var_kwargs_gets_whole_context(runner: Any) -> None:
    got: dict[str, Any] = {}

    def work(**context: Any) -> None:
        got.update(context)

    with DAG("d") as dag:
        PythonOperator(task_id="p", python_callable=work, show_return_value_in_logs=False)
    runner(dag).run_task("p")
    assert {"ti", "ds", "run_id", "params", "dag", "task", "logical_date"} <= got.keys()


def test_python_operator_templates(runner: Any) -> None:
    def work(x: str, templates_dict: dict[str, str]) -> str:
        return x + "|" + templates_dict["when"]

    with DAG("d") as dag:
        PythonOperator(
            task_id="p", python_callable=work, op_args=["{{ ds_nodash }}"], templates_dict={"when": "{{ ts_nodash }}"}
        )
    assert runner(dag).run_task("p") == "20240102|20240102T030405"


def test_bash_operator_streams_output_and_returns_last_line(runner: Any, capsys: Any) -> None:
    with DAG("d") as dag:
        BashOperator(task_id="b", bash_command="echo one; echo two >&2; echo {{ ds }}")
    assert runner(dag).run_task("b") == "2024-01-02"
    assert capsys.readouterr().out.splitlines() == ["one", "two", "2024-01-02"]


def test_bash_operator_env_append_env_and_cwd(runner: Any, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HEADRACE_TEST_OUTER", "outer")
    with DAG("d") as dag:
        BashOperator(task_id="only", bash_command='echo "${HEADRACE_TEST_OUTER:-unset}-$MINE"', env={"MINE": "m"})
        BashOperator(
            task_id="both", bash_command='echo "$HEADRACE_TEST_OUTER-$MINE"', env={"MINE": "m"}, append_env=True
        )
        BashOperator(task_id="where", bash_command="pwd", cwd=str(tmp_path))
    r = runner(dag)
    assert r.run_task("only") == "unset-m"
    assert r.run_task("both") == "outer-m"
    assert r.run_task("where") == str(tmp_path)


def test_bash_operator_failure_and_skip(runner: Any) -> None:
    with DAG("d") as dag:
        BashOperator(task_id="fail", bash_command="echo oops; exit 3")
        BashOperator(task_id="skip", bash_command="exit 99")
        BashOperator(task_id="skip_custom", bash_command="exit 42", skip_on_exit_code=[42, 43])
        BashOperator(task_id="no_skip", bash_command="exit 99", skip_on_exit_code=None)
    r = runner(dag)
    with pytest.raises(RuntimeError, match="Bash command failed. The command returned a non-zero exit code 3."):
        r.run_task("fail")
    with pytest.raises(SkipTask):
        r.run_task("skip")
    with pytest.raises(SkipTask):
        r.run_task("skip_custom")
    with pytest.raises(RuntimeError, match="exit code 99"):
        r.run_task("no_skip")


def test_bash_operator_no_output_returns_none(runner: Any) -> None:
    with DAG("d") as dag:
        BashOperator(task_id="quiet", bash_command="true")
    assert runner(dag).run_task("quiet") is None


def test_branch_skips_direct_downstream_not_chosen(runner: Any) -> None:
    with DAG("d") as dag:
        branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
        left, right, other = (EmptyOperator(task_id=t) for t in ("left", "right", "other"))
        after_right = EmptyOperator(task_id="after_right")
        branch >> [left, right, other]
        right >> after_right
    r = runner(dag)
    assert r.run_task("branch") == "left"
    assert r.skipped == {"right", "other"}  # only direct downstream; trigger rules handle the rest


def test_branch_with_list_and_bad_choice(runner: Any) -> None:
    with DAG("d") as dag:
        ok = BranchPythonOperator(task_id="ok", python_callable=lambda: ["a", "b"])
        bad = BranchPythonOperator(task_id="bad", python_callable=lambda: "zzz")
        worse = BranchPythonOperator(task_id="worse", python_callable=lambda: 3)
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        ok >> [a, b, c]
        bad >> a
        worse >> a
    r = runner(dag)
    r.run_task("ok")
    assert r.skipped == {"c"}
    with pytest.raises(ValueError, match="chose \\['zzz'\\]"):
        r.run_task("bad")
    with pytest.raises(TypeError, match="must return a task_id"):
        r.run_task("worse")


def test_short_circuit_truthy_skips_nothing(runner: Any) -> None:
    with DAG("d") as dag:
        sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: True)
        sc >> EmptyOperator(task_id="a")
    r = runner(dag)
    assert r.run_task("sc") is True
    assert r.skipped == set()


@pytest.mark.parametrize(("ignore", "expected"), [(True, {"a", "b", "c"}), (False, {"a"})])
def test_short_circuit_falsy(runner: Any, ignore: bool, expected: set[str]) -> None:
    with DAG("d") as dag:
        sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: 0, ignore_downstream_trigger_rules=ignore)
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        sc >> a >> b >> c
    r = runner(dag)
    r.run_task("sc")
    assert r.skipped == expected


def test_public_import_path() -> None:
    import headrace.operators as public

    assert public.BashOperator is BashOperator
    assert set(public.__all__) == {
        "BaseBranchOperator",
        "BashOperator",
        "BranchDateTimeOperator",
        "BranchDayOfWeekOperator",
        "BranchExternalPythonOperator",
        "BranchPythonOperator",
        "EmailOperator",
        "BranchPythonVirtualenvOperator",
        "EmptyOperator",
        "ExternalPythonOperator",
        "LatestOnlyOperator",
        "PythonOperator",
        "SQLExecuteQueryOperator",
        "PythonVirtualenvOperator",
        "ShortCircuitOperator",
        "TriggerDagRunOperator",
        "WeekDay",
    }
