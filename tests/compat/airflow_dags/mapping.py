"""Airflow 3 style dynamic task mapping: partial/expand, expand_kwargs, a classic operator over literals,
a mapped task group, and the list of mapped values downstream."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task, task_group


@dag(dag_id="compat_mapping", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["compat"])
def compat_mapping():
    @task
    def files() -> list[str]:
        return ["a.csv", "bb.csv", "ccc.csv"]

    @task
    def size(name: str, factor: int) -> int:
        return len(name) * factor

    @task
    def total(sizes) -> int:
        assert list(sizes) == [10, 12, 14], list(sizes)  # ordered by map index
        return sum(sizes)

    @task
    def pairs() -> list[dict[str, int]]:
        return [{"a": 1, "b": 2}, {"a": 3, "b": 4}]

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def check_sums(values) -> None:
        assert list(values) == [3, 7], list(values)

    @task_group
    def per_file(name):
        @task
        def upper(n: str) -> str:
            return n.upper()

        @task
        def check_upper(u: str, ti=None) -> None:
            assert u.endswith(".CSV") and ti.map_index >= 0, (u, ti.map_index)

        check_upper(upper(name))

    names = files()
    total(size.partial(factor=2).expand(name=names))
    check_sums(add.expand_kwargs(pairs()))
    BashOperator.partial(task_id="echo").expand(bash_command=["echo one", "echo two"])
    per_file.expand(name=names)


compat_mapping()
