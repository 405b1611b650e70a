"""DAG warnings: Airflow arguments headrace ignores, and default_args no task accepts, are named, never lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace.authoring.dag import DAG
from headrace.authoring.dag_warnings import UNSUPPORTED_ARGUMENT, UNUSED_DEFAULT_ARG, dag_warnings
from headrace.authoring.decorators import task
from headrace.authoring.operators import BashOperator, EmptyOperator
from headrace.exceptions import DagDefinitionError


def kinds(dag: DAG) -> list[tuple[str, str]]:
    return [(w.kind, w.message) for w in dag_warnings(dag)]


def test_airflow_arguments_headrace_lacks_are_accepted_ignored_and_named() -> None:
    with DAG("port") as dag:
        op = EmptyOperator(task_id="a", email_on_failure=True, sla=60, run_as_user="etl", retries=2)
    assert op.retries == 2 and op.ignored_arguments == ("email_on_failure", "run_as_user", "sla")
    assert not hasattr(op, "sla")
    assert kinds(dag) == [
        (
            UNSUPPORTED_ARGUMENT,
            f"task 'a': argument {name!r} is an Airflow operator argument headrace does not support yet; it is ignored",
        )
        for name in ("email_on_failure", "run_as_user", "sla")
    ]


def test_an_argument_no_operator_knows_still_raises() -> None:
    with DAG("typo"), pytest.raises(DagDefinitionError, match="invalid arguments .*: retires"):
        EmptyOperator(task_id="a", retires=3)


def test_default_args_apply_where_accepted_and_the_rest_is_named() -> None:
    default_args = {
        "start_date": datetime(2024, 1, 1),
        "owner": "data",
        "retries": 1,
        "bash_command": "true",
        "email": ["ops@example.com"],
        "email_on_retry": False,
        "colour": "blue",
    }
    with DAG("shared", default_args=default_args) as dag:
        empty = EmptyOperator(task_id="empty")
        bash = BashOperator(task_id="bash")
    assert (empty.owner, empty.retries, bash.bash_command) == ("data", 1, "true")  # bash_command: accepted by one
    assert empty.ignored_arguments == () and dag.start_date == datetime(2024, 1, 1, tzinfo=UTC)  # the DAG's own
    assert kinds(dag) == [
        (UNUSED_DEFAULT_ARG, "default_args key 'colour' is accepted by no task of DAG 'shared'; it is ignored"),
        (
            UNSUPPORTED_ARGUMENT,
            "default_args key 'email' is an Airflow operator argument headrace does not support yet; it is ignored",
        ),
        (
            UNSUPPORTED_ARGUMENT,
            "default_args key 'email_on_retry' is an Airflow operator argument headrace does "
            "not support yet; it is ignored",
        ),
    ]


def test_taskflow_tasks_report_their_ignored_arguments() -> None:
    with DAG("flow") as dag:

        @task(run_as_user="etl")
        def work() -> None: ...

        work()
    assert [w.message for w in dag_warnings(dag)] == [
        "task 'work': argument 'run_as_user' is an Airflow operator argument headrace does not support "
        "yet; it is ignored"
    ]


def test_a_dag_with_nothing_ignored_has_no_warnings() -> None:
    with DAG("clean", default_args={"retries": 3, "start_date": datetime(2024, 1, 1)}) as dag:
        EmptyOperator(task_id="a", owner="me")
    assert dag_warnings(dag) == []


def test_airflow_dag_arguments_headrace_lacks_are_accepted_and_named_unless_left_at_airflows_default() -> None:
    with DAG(
        "acl",
        access_control={"Op": {"can_read"}},
        owner_links={},  # empty: as if not given
        fail_fast=True,
        max_consecutive_failed_dag_runs=0,  # Airflow's default (off)
        auto_register=True,
        disable_bundle_versioning=False,
        sla_miss_callback=None,
    ) as dag:
        EmptyOperator(task_id="a")
    assert dag.ignored_arguments == ("access_control", "fail_fast")
    assert kinds(dag) == [
        (
            UNSUPPORTED_ARGUMENT,
            "DAG argument 'access_control' is an Airflow argument headrace does not support; it is ignored "
            "(the UI and API have their own roles: docs/security.md)",
        ),
        (
            UNSUPPORTED_ARGUMENT,
            "DAG argument 'fail_fast' is an Airflow argument headrace does not support; it is ignored "
            "(running tasks are not stopped when one fails)",
        ),
    ]
    with DAG("quiet", access_control=None, owner_links=None, auto_register=True, fail_fast=False) as quiet:
        EmptyOperator(task_id="a")
    assert dag_warnings(quiet) == []


def _venv_func() -> int:
    return 1


def test_expect_airflow_and_expect_pendulum_given_as_true_are_named() -> None:
    """Airflow passes its context objects / pendulum dates when the target environment has them; headrace never
    does, so an explicit True is a DAG warning naming the argument; False or leaving them out is silent."""
    from headrace.operators import ExternalPythonOperator, PythonVirtualenvOperator

    with DAG("venvs", default_args={"expect_airflow": True}) as dag:
        PythonVirtualenvOperator(task_id="from_default_args", python_callable=_venv_func)
        PythonVirtualenvOperator(task_id="off", python_callable=_venv_func, expect_airflow=False)
        ExternalPythonOperator(
            task_id="ext", python="/usr/bin/python3", python_callable=_venv_func, expect_pendulum=True
        )
    with DAG("quiet") as quiet:
        PythonVirtualenvOperator(task_id="plain", python_callable=_venv_func)
        ExternalPythonOperator(task_id="ext", python="/usr/bin/python3", python_callable=_venv_func)
    found = [(w.kind, w.message.split(" changes nothing")[0]) for w in dag_warnings(dag)]
    assert found == [
        (UNSUPPORTED_ARGUMENT, "task 'ext': argument 'expect_airflow'"),  # default_args reach it too
        (UNSUPPORTED_ARGUMENT, "task 'ext': argument 'expect_pendulum'"),
        (UNSUPPORTED_ARGUMENT, "task 'from_default_args': argument 'expect_airflow'"),
    ]
    assert "never runtime objects such as ti or macros" in dag_warnings(dag)[0].message
    assert dag.get_task("off").expect_airflow is False and dag.get_task("from_default_args").expect_airflow is True
    assert dag_warnings(quiet) == [] and quiet.get_task("plain").expect_airflow is True  # Airflow's default
