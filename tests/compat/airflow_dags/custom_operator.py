"""Airflow 3 style: a custom operator as Airflow teams write them.

``self.log``, ``template_fields`` with ``template_ext`` (a ``.sql`` file found beside the DAG file), the
``Context`` annotation, ``context["ti"].xcom_push``, ``.output``, ``@task.python``, and ``airflow.models.Variable.get``
with its ``default_var=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from airflow.exceptions import AirflowFailException
from airflow.models import Variable
from airflow.sdk import DAG, BaseOperator, Context, task


class RenderSqlOperator(BaseOperator):
    template_fields: Sequence[str] = ("sql", "target")
    template_ext: Sequence[str] = (".sql",)
    ui_color = "#ffefeb"

    def __init__(self, *, sql: str, target: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.target = target

    def execute(self, context: Context) -> str:
        self.log.info("rendered %s into %s", self.sql.strip(), self.target)
        if "{{" in self.sql or not self.target.startswith("t_"):
            raise AirflowFailException(f"not rendered: {self.sql!r} {self.target!r}")
        context["ti"].xcom_push(key="target", value=self.target)
        return self.sql.strip()


with DAG(dag_id="compat_custom_operator", schedule=None, start_date=datetime(2024, 1, 1), params={"n": 5}):
    render = RenderSqlOperator(task_id="render", sql="sql/custom_operator.sql", target="t_{{ ds_nodash }}")

    @task.python  # Airflow's other spelling of @task
    def check(sql: str, ti=None) -> None:
        assert sql.startswith("SELECT '") and sql.endswith("5 AS n"), sql
        assert ti.xcom_pull(task_ids="render", key="target").startswith("t_")
        assert Variable.get("compat_absent_variable", default_var="fallback") == "fallback"

    check(render.output)
