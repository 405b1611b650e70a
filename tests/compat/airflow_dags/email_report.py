"""Airflow 3 style: the SMTP provider's EmailOperator and SmtpHook (the harness stores the ``compat_smtp`` connection)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.operators.smtp import EmailOperator
from airflow.sdk import DAG, task

with DAG(dag_id="compat_email", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["compat"]):
    EmailOperator(
        task_id="send_report",
        conn_id="compat_smtp",
        to=["team@example.com"],
        cc="lead@example.com",
        subject="Report for {{ ds }}",
        html_content="<h1>{{ dag.dag_id }}</h1><p>run {{ run_id }}</p>",
    )

    @task
    def send_with_the_hook():
        with SmtpHook(smtp_conn_id="compat_smtp") as hook:
            hook.send_email_smtp(to="team@example.com", subject="From a hook", html_content="<p>hook</p>")

    send_with_the_hook()
