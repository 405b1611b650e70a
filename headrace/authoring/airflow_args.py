"""The keyword arguments of Airflow 3's ``BaseOperator``, for the DAG warnings about those headrace ignores."""

from __future__ import annotations

AIRFLOW_OPERATOR_ARGS: frozenset[str] = frozenset(
    {
        "task_id",
        "owner",
        "email",
        "email_on_retry",
        "email_on_failure",
        "retries",
        "retry_delay",
        "retry_exponential_backoff",
        "max_retry_delay",
        "retry_policy",
        "start_date",
        "end_date",
        "depends_on_past",
        "depends_on_previous_tasks",
        "ignore_first_depends_on_past",
        "wait_for_past_depends_before_skipping",
        "wait_for_downstream",
        "dag",
        "params",
        "default_args",
        "priority_weight",
        "weight_rule",
        "queue",
        "pool",
        "pool_slots",
        "sla",
        "execution_timeout",
        "on_execute_callback",
        "on_failure_callback",
        "on_success_callback",
        "on_retry_callback",
        "on_skipped_callback",
        "pre_execute",
        "post_execute",
        "trigger_rule",
        "resources",
        "run_as_user",
        "task_concurrency",
        "map_index_template",
        "max_active_tis_per_dag",
        "max_active_tis_per_dagrun",
        "executor",
        "executor_config",
        "do_xcom_push",
        "multiple_outputs",
        "inlets",
        "outlets",
        "task_group",
        "doc",
        "doc_md",
        "doc_json",
        "doc_yaml",
        "doc_rst",
        "task_display_name",
        "logger_name",
        "allow_nested_operators",
        "render_template_as_native_obj",
        "start_from_trigger",
        "start_trigger_args",
    }
)
"""The keyword arguments of Airflow 3's ``BaseOperator`` (Task SDK). Those an operator here does not
accept are ignored with a DAG warning instead of raising, so an Airflow DAG ports by changing its imports."""

IGNORED_DAG_ARGS: dict[str, tuple[object, str]] = {
    "access_control": (None, "the UI and API have their own roles: docs/security.md"),
    "owner_links": (None, "owners are not shown as links"),
    "auto_register": (True, "the DAG is registered like any other"),
    "fail_fast": (False, "running tasks are not stopped when one fails"),
    "max_consecutive_failed_dag_runs": (0, "the DAG is not paused after failed runs"),
    "disable_bundle_versioning": (False, "headrace has no DAG bundles"),
    "sla_miss_callback": (None, "SLAs were removed in Airflow 3; use deadline= and on_deadline_miss_callback="),
}
"""Airflow 3 ``DAG`` arguments headrace accepts and ignores: name → (Airflow's default, what ignoring it
means). A value other than the default (or an empty dict) is a DAG warning naming the argument."""


def ignored_dag_arguments(given: dict[str, object]) -> tuple[str, ...]:
    """The names in ``given`` (argument → value, for the keys of :data:`IGNORED_DAG_ARGS`) whose value is
    not Airflow's default, None or an empty dict: those a DAG author set and headrace will not act on."""
    return tuple(
        name
        for name, value in given.items()
        if value is not None and value != {} and value != IGNORED_DAG_ARGS[name][0]
    )


__all__ = ["AIRFLOW_OPERATOR_ARGS", "IGNORED_DAG_ARGS", "ignored_dag_arguments"]
