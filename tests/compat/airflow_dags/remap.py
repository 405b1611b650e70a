"""Airflow 3 style: a mapped task over an upstream's list whose length a Variable sets. Cleared after a
change of the Variable, the mapped task expands again: indices past the new length end ``removed``."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Variable, dag, task


@dag(dag_id="compat_remap", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["compat"])
def compat_remap():
    @task
    def items() -> list[int]:
        return list(range(int(Variable.get("compat_remap_length", default="3"))))

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def check(values) -> None:
        n = int(Variable.get("compat_remap_length", default="3"))
        assert list(values) == [i * i for i in range(n)], list(values)

    check(square.expand(x=items()))


compat_remap()
