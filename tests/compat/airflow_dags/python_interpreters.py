"""Airflow 3 style: PythonVirtualenvOperator, ExternalPythonOperator, @task.virtualenv, @task.external_python,
@task.bash and @task.run_if / @task.skip_if."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime

from airflow.sdk import DAG, XComArg, task
from airflow.providers.standard.operators.python import ExternalPythonOperator, PythonVirtualenvOperator

VENV_CACHE = os.path.join(tempfile.gettempdir(), "headrace-compat-venvs")


def in_venv(x, ds=None):
    import sys

    assert sys.prefix != sys.base_prefix, "not in a virtualenv"
    assert ds is not None
    return x * 2


def add(a, b):
    return a + b


with DAG(dag_id="compat_python_interpreters", schedule=None, start_date=datetime(2024, 1, 1)):
    venv = PythonVirtualenvOperator(
        task_id="venv",
        python_callable=in_venv,
        op_args=[21],
        system_site_packages=False,
        venv_cache_path=VENV_CACHE,
    )
    external = ExternalPythonOperator(task_id="external", python=sys.executable, python_callable=add, op_args=[1, 2])

    @task.virtualenv(system_site_packages=False, venv_cache_path=VENV_CACHE)
    def doubled(value):
        return value * 2

    @task.external_python(python=sys.executable)
    def plus_one(value):
        return value + 1

    @task.bash
    def announce(first, second):
        return f"echo {first} {second} on {{{{ ds }}}}"

    @task.run_if(lambda context: context["params"].get("go", True))
    @task
    def runs():
        return "ran"

    @task.skip_if(lambda context: context["dag_run"].run_type == "manual", skip_message="manual run")
    @task
    def skipped_when_manual():
        raise RuntimeError("should have been skipped")

    announce(doubled(XComArg(venv)), plus_one(XComArg(external))) >> runs() >> skipped_when_manual()
