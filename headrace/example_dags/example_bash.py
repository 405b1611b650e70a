"""BashOperator: templated commands, environment, and skipping by exit code.

``greet`` renders ``{{ ds }}`` and ``{{ run_id }}`` with Jinja; ``count_files``
uses ``env``; ``maybe_skip`` exits 99, which BashOperator turns into
``skipped`` (``skip_on_exit_code``), so ``after_skip`` (all_success) is skipped
too, while ``always_report`` (trigger rule ``all_done``) still runs.
"""

from __future__ import annotations

from datetime import datetime

from headrace import DAG
from headrace.operators import BashOperator, EmptyOperator

with DAG(
    dag_id="example_bash",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["example"],
    description="BashOperator with templating, env and skip_on_exit_code.",
) as dag:
    start = EmptyOperator(task_id="start")
    greet = BashOperator(task_id="greet", bash_command='echo "hello from run {{ run_id }} for {{ ds }}"')
    count_files = BashOperator(
        task_id="count_files",
        bash_command='echo "$GREETING: $(ls "$TARGET" | wc -l) entries in $TARGET"',
        env={"GREETING": "count", "TARGET": "/etc"},
    )
    maybe_skip = BashOperator(task_id="maybe_skip", bash_command="echo 'nothing to do today'; exit 99")
    after_skip = BashOperator(task_id="after_skip", bash_command="echo 'never printed'")
    always_report = BashOperator(task_id="always_report", bash_command="echo done", trigger_rule="all_done")

    start >> [greet, count_files, maybe_skip]
    maybe_skip >> after_skip
    [greet, count_files, after_skip] >> always_report
