"""The one table of Airflow import paths and what they are in headrace.

Both :mod:`headrace.compat.airflow_finder` (``core.airflow_imports``: DAG
files keep their ``airflow.*`` imports) and ``headrace migrate airflow``
(the imports are rewritten) read it, so the two never disagree.

``MODULES[airflow_module][name]`` is a :class:`Target`: the public headrace
module and attribute that implements Airflow's name, and the feature's name
for messages. A target is looked up when it is used (:func:`resolve`): a
feature another part of headrace has not shipped yet (sensors, ``Metadata`` …) is then reported as not supported — with its name — instead of
resolving to a wrong object. Airflow modules absent from the table, and the
prefixes in :data:`UNSUPPORTED_MODULES`, are not supported at all.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """Where headrace implements one Airflow name."""

    module: str
    """Public headrace module, e.g. ``headrace.operators``."""
    attr: str
    """Attribute of that module, e.g. ``EmptyOperator``."""
    feature: str
    """What it is, for messages: ``the BashOperator``, ``task groups``."""


class NotSupported(ImportError):
    """Raised when an Airflow name or module has no implementation in headrace (yet)."""

    def __init__(self, airflow_name: str, feature: str) -> None:
        super().__init__(f"{airflow_name}: headrace does not support {feature} yet", name=airflow_name)
        self.airflow_name = airflow_name
        self.feature = feature


_TOP = "headrace"
_OPS = "headrace.operators"
_EXC = "headrace.exceptions"
_TT = "headrace.timetables"
_DATES = "headrace.compat.dates"
_HOOKS = "headrace.hooks"
_SQL = "headrace.integrations.sql"


def _t(module: str, attr: str, feature: str | None = None) -> Target:
    return Target(module, attr, feature or f"{attr}")


_MACROS = {
    name: _t("headrace.authoring.macros", name, f"macros.{name}")
    for name in ("ds_add", "ds_format", "ds_format_locale", "datetime_diff_for_humans")
}
_XCOM = "headrace.authoring.xcom_backend"
_DAG = {"DAG": _t(_TOP, "DAG", "DAG"), "dag": _t(_TOP, "dag", "the @dag decorator")}
_TASKFLOW = {
    "task": _t(_TOP, "task", "the @task decorator"),
    "task_group": _t(_TOP, "task_group", "task groups (@task_group)"),
    "setup": _t(_TOP, "setup", "setup tasks (@setup)"),
    "teardown": _t(_TOP, "teardown", "teardown tasks (@teardown)"),
}
_BASEOPERATOR = {
    "BaseOperator": _t(_TOP, "BaseOperator", "BaseOperator"),
    "chain": _t(_TOP, "chain", "chain()"),
    "chain_linear": _t(_TOP, "chain_linear", "chain_linear()"),
    "cross_downstream": _t(_TOP, "cross_downstream", "cross_downstream()"),
}
_PARAM = {"Param": _t(_TOP, "Param", "Param"), "ParamsDict": _t(_TOP, "ParamsDict", "ParamsDict")}
_CONTEXT = {"get_current_context": _t(_TOP, "get_current_context", "get_current_context()")}
_CONTEXT_TYPE = {"Context": _t("headrace.types", "Context", "the Context type")}
"""Airflow's ``Context`` (a ``TypedDict`` there) in annotations (``def execute(self, context: Context)``):
headrace's is the alias ``dict[str, Any]`` of :mod:`headrace.types`."""
_METADATA_DB = {
    name: _t(_TOP, name, f"reading the metadata database from DAG files ({name})")
    for name in ("DagRun", "TaskInstance", "XCom", "DagModel", "DagBag", "Pool", "TaskReschedule", "Log")
}
"""Names ``airflow.models`` exports that headrace does not offer to DAG files: reported naming the feature."""
_SECRETS = {
    "Variable": _t(_TOP, "Variable", "Variable"),
    "Connection": _t(_TOP, "Connection", "Connection"),
}
_ASSETS = {
    **{
        name: _t(_TOP, name, f"assets ({name})")
        for name in ("Asset", "AssetAlias", "AssetAll", "AssetAny", "Dataset", "asset")
    },
    # yielding Metadata(asset, extra) from a task: headrace takes outlet_events[asset].extra instead
    "Metadata": _t(_TOP, "Metadata", "asset event metadata (Metadata: set the extra through outlet_events)"),
}
_DATASETS = {  # Airflow 2's names of the same classes
    "Dataset": _t(_TOP, "Dataset", "assets (Dataset)"),
    "DatasetAlias": _t(_TOP, "AssetAlias", "assets (DatasetAlias)"),
    "DatasetAll": _t(_TOP, "AssetAll", "assets (DatasetAll)"),
    "DatasetAny": _t(_TOP, "AssetAny", "assets (DatasetAny)"),
}
_BASEHOOK = {"BaseHook": _t(_HOOKS, "BaseHook", "hooks (BaseHook)")}
_SQL_HANDLERS = {
    name: _t(_HOOKS, name, f"the SQL result handler {name}")
    for name in ("fetch_all_handler", "fetch_one_handler", "return_single_query_results")
}
_SQL_OPERATORS = {
    "SQLExecuteQueryOperator": _t(_OPS, "SQLExecuteQueryOperator", "the SQLExecuteQueryOperator"),
    "BaseSQLOperator": _t(_SQL, "BaseSQLOperator", "the BaseSQLOperator"),
    # Airflow's SQL check and branch operators: names headrace knows but does not implement yet.
    **{
        name: _t(_OPS, name, f"the {name}")
        for name in (
            "SQLCheckOperator",
            "SQLValueCheckOperator",
            "SQLIntervalCheckOperator",
            "SQLThresholdCheckOperator",
            "SQLColumnCheckOperator",
            "SQLTableCheckOperator",
            "BranchSQLOperator",
        )
    },
}
_SENSORS = {
    "BaseSensorOperator": _t(_TOP, "BaseSensorOperator", "sensors (BaseSensorOperator)"),
    "PokeReturnValue": _t(_TOP, "PokeReturnValue", "sensors (PokeReturnValue)"),
}
_TRIG = "headrace.triggers"
_TRIGGER_MODULES: dict[str, dict[str, Target]] = {
    "base": {
        name: _t(_TRIG, name, f"triggers ({name})") for name in ("BaseTrigger", "TriggerEvent", "StartTriggerArgs")
    },
    "temporal": {name: _t(_TRIG, name, f"the {name}") for name in ("DateTimeTrigger", "TimeDeltaTrigger")},
    "file": {"FileTrigger": _t(_TRIG, "FileTrigger", "the FileTrigger")},
    "external_task": {name: _t(_TRIG, name, f"the {name}") for name in ("DagStateTrigger", "WorkflowTrigger")},
}
"""Airflow 2's ``airflow.triggers.<module>`` and Airflow 3's ``airflow.providers.standard.triggers.<module>``
(``base`` is Airflow 2's only)."""
_SENS = "headrace.sensors"
_SENSOR_MODULES: dict[str, dict[str, Target]] = {
    "base": {**_SENSORS, "poke_mode_only": _t(_SENS, "poke_mode_only", "poke_mode_only")},
    "python": {"PythonSensor": _t(_SENS, "PythonSensor", "the PythonSensor")},
    "bash": {"BashSensor": _t(_SENS, "BashSensor", "the BashSensor")},
    "filesystem": {"FileSensor": _t(_SENS, "FileSensor", "the FileSensor")},
    "time": {"TimeSensor": _t(_SENS, "TimeSensor", "the TimeSensor")},
    "time_delta": {"TimeDeltaSensor": _t(_SENS, "TimeDeltaSensor", "the TimeDeltaSensor")},
    "date_time": {"DateTimeSensor": _t(_SENS, "DateTimeSensor", "the DateTimeSensor")},
    "weekday": {"DayOfWeekSensor": _t(_SENS, "DayOfWeekSensor", "the DayOfWeekSensor")},
    "external_task": {name: _t(_SENS, name, f"the {name}") for name in ("ExternalTaskSensor", "ExternalTaskMarker")},
}
"""Airflow 3's ``airflow.providers.standard.sensors.<module>`` (Airflow 2's ``airflow.sensors.<module>``)."""

_PYTHON_OPERATORS = {
    "PythonOperator": _t(_OPS, "PythonOperator", "the PythonOperator"),
    "BranchPythonOperator": _t(_OPS, "BranchPythonOperator", "the BranchPythonOperator"),
    "ShortCircuitOperator": _t(_OPS, "ShortCircuitOperator", "the ShortCircuitOperator"),
    "PythonVirtualenvOperator": _t(_OPS, "PythonVirtualenvOperator", "the PythonVirtualenvOperator"),
    "BranchPythonVirtualenvOperator": _t(_OPS, "BranchPythonVirtualenvOperator", "the BranchPythonVirtualenvOperator"),
    "ExternalPythonOperator": _t(_OPS, "ExternalPythonOperator", "the ExternalPythonOperator"),
    "BranchExternalPythonOperator": _t(_OPS, "BranchExternalPythonOperator", "the BranchExternalPythonOperator"),
    **_CONTEXT,
}
_OPERATOR_MODULES: dict[str, dict[str, Target]] = {
    "python": _PYTHON_OPERATORS,
    "bash": {"BashOperator": _t(_OPS, "BashOperator", "the BashOperator")},
    "empty": {"EmptyOperator": _t(_OPS, "EmptyOperator", "the EmptyOperator")},
    "branch": {"BaseBranchOperator": _t(_OPS, "BaseBranchOperator", "the BaseBranchOperator")},
    "latest_only": {"LatestOnlyOperator": _t(_OPS, "LatestOnlyOperator", "the LatestOnlyOperator")},
    "weekday": {"BranchDayOfWeekOperator": _t(_OPS, "BranchDayOfWeekOperator", "the BranchDayOfWeekOperator")},
    "datetime": {"BranchDateTimeOperator": _t(_OPS, "BranchDateTimeOperator", "the BranchDateTimeOperator")},
    "trigger_dagrun": {"TriggerDagRunOperator": _t(_OPS, "TriggerDagRunOperator", "the TriggerDagRunOperator")},
    "smtp": {"EmailOperator": _t(_OPS, "EmailOperator", "the EmailOperator")},
}

MODULES: dict[str, dict[str, Target]] = {
    "airflow": {**_DAG, "XComArg": _t(_TOP, "XComArg", "XComArg")},
    "airflow.sdk": {
        **_DAG,
        **_TASKFLOW,
        **_BASEOPERATOR,
        **_PARAM,
        **_CONTEXT,
        **_CONTEXT_TYPE,
        **_SECRETS,
        **_ASSETS,
        **_SENSORS,
        "XComArg": _t(_TOP, "XComArg", "XComArg"),
        "TriggerRule": _t(_TOP, "TriggerRule", "TriggerRule"),
        "TaskGroup": _t(_TOP, "TaskGroup", "task groups (TaskGroup)"),
        "Label": _t(_TOP, "Label", "edge labels (Label)"),
        **_BASEHOOK,
        "BaseNotifier": _t(_TOP, "BaseNotifier", "notifiers (BaseNotifier)"),
        "ObjectStoragePath": _t(_TOP, "ObjectStoragePath", "object storage (ObjectStoragePath)"),
    },
    "airflow.sdk.definitions.dag": _DAG,
    "airflow.sdk.definitions.decorators": {**_TASKFLOW, "dag": _DAG["dag"]},
    "airflow.sdk.definitions.baseoperator": _BASEOPERATOR,
    "airflow.sdk.bases.operator": _BASEOPERATOR,
    "airflow.sdk.definitions.xcom_arg": {"XComArg": _t(_TOP, "XComArg", "XComArg")},
    "airflow.sdk.definitions.param": _PARAM,
    "airflow.sdk.definitions.context": {**_CONTEXT, **_CONTEXT_TYPE},
    "airflow.utils.context": _CONTEXT_TYPE,  # Airflow 2's Context, for annotations
    "airflow.sdk.definitions.taskgroup": {"TaskGroup": _t(_TOP, "TaskGroup", "task groups (TaskGroup)")},
    "airflow.sdk.definitions.edges": {"Label": _t(_TOP, "Label", "edge labels (Label)")},
    "airflow.sdk.definitions.asset": _ASSETS,
    "airflow.sdk.definitions.asset.decorators": {"asset": _ASSETS["asset"]},
    "airflow.datasets": _DATASETS,
    "airflow.assets": _ASSETS,
    "airflow.timetables.assets": {
        "AssetOrTimeSchedule": _t(_TT, "AssetOrTimeSchedule", "assets (AssetOrTimeSchedule)"),
    },
    "airflow.timetables.datasets": {
        "DatasetOrTimeSchedule": _t(_TT, "AssetOrTimeSchedule", "assets (DatasetOrTimeSchedule)"),
    },
    "airflow.decorators": {**_TASKFLOW, "dag": _DAG["dag"]},
    "airflow.models": {
        "DAG": _DAG["DAG"],
        "BaseOperator": _BASEOPERATOR["BaseOperator"],
        **_SECRETS,
        **_PARAM,
        "XComArg": _t(_TOP, "XComArg", "XComArg"),
        **_METADATA_DB,
    },
    "airflow.models.dag": {"DAG": _DAG["DAG"]},
    "airflow.models.baseoperator": _BASEOPERATOR,
    "airflow.models.variable": {"Variable": _SECRETS["Variable"]},
    "airflow.models.connection": {"Connection": _SECRETS["Connection"]},
    "airflow.models.param": _PARAM,
    "airflow.models.xcom_arg": {"XComArg": _t(_TOP, "XComArg", "XComArg")},
    # Airflow 2's DummyOperator is Airflow 3's EmptyOperator: the same operator under its old name.
    "airflow.operators.dummy": {"DummyOperator": _t(_OPS, "EmptyOperator", "the EmptyOperator (DummyOperator)")},
    "airflow.operators.email": _OPERATOR_MODULES["smtp"],
    "airflow.hooks.base": _BASEHOOK,
    "airflow.hooks.base_hook": _BASEHOOK,  # Airflow 1.10's name, still importable in Airflow 2
    "airflow.sdk.bases.hook": _BASEHOOK,
    "airflow.hooks.dbapi": {"DbApiHook": _t(_HOOKS, "DbApiHook", "the DbApiHook")},  # Airflow 2
    "airflow.providers.common.sql.hooks.sql": {
        "DbApiHook": _t(_HOOKS, "DbApiHook", "the DbApiHook"),
        **_SQL_HANDLERS,
    },
    "airflow.providers.common.sql.hooks.handlers": _SQL_HANDLERS,
    "airflow.providers.common.sql.operators.sql": _SQL_OPERATORS,
    "airflow.providers.postgres.hooks.postgres": {"PostgresHook": _t(_HOOKS, "PostgresHook", "the PostgresHook")},
    "airflow.providers.mysql.hooks.mysql": {"MySqlHook": _t(_HOOKS, "MySqlHook", "the MySqlHook")},
    "airflow.providers.sqlite.hooks.sqlite": {"SqliteHook": _t(_HOOKS, "SqliteHook", "the SqliteHook")},
    "airflow.providers.smtp.hooks.smtp": {"SmtpHook": _t(_HOOKS, "SmtpHook", "the SmtpHook")},
    "airflow.providers.smtp.operators.smtp": _OPERATOR_MODULES["smtp"],
    "airflow.exceptions": {
        name: _t(_EXC, name, f"the exception {name}")
        for name in (
            "AirflowException",
            "AirflowSkipException",
            "AirflowFailException",
            "AirflowTaskTimeout",
            "AirflowSensorTimeout",
            "AirflowNotFoundException",
            "AirflowRescheduleException",
            "TaskDeferred",
            "TaskDeferralError",
            "TaskDeferralTimeout",
        )
    },
    "airflow.timetables.base": {
        name: _t(_TT, name, f"the timetable API ({name})")
        for name in ("Timetable", "DagRunInfo", "DataInterval", "TimeRestriction")
    },
    "airflow.timetables.trigger": {
        name: _t(_TT, name, f"the {name}")
        for name in ("CronTriggerTimetable", "DeltaTriggerTimetable", "MultipleCronTriggerTimetable")
    },
    "airflow.timetables.interval": {
        name: _t(_TT, name, f"the {name}") for name in ("CronDataIntervalTimetable", "DeltaDataIntervalTimetable")
    },
    "airflow.timetables.events": {"EventsTimetable": _t(_TT, "EventsTimetable", "the EventsTimetable")},
    "airflow.timetables.simple": {
        **{name: _t(_TT, name, f"the {name}") for name in ("NullTimetable", "OnceTimetable", "ContinuousTimetable")},
        "AssetTriggeredTimetable": _t(_TT, "AssetTriggeredTimetable", "assets (AssetTriggeredTimetable)"),
        "DatasetTriggeredTimetable": _t(_TT, "DatasetTriggeredTimetable", "assets (DatasetTriggeredTimetable)"),
    },
    "airflow.utils.trigger_rule": {"TriggerRule": _t(_TOP, "TriggerRule", "TriggerRule")},
    "airflow.macros": _MACROS,
    "airflow.sdk.execution_time.macros": _MACROS,
    "airflow.sdk.bases.xcom": {"BaseXCom": _t(_XCOM, "BaseXCom", "XCom backends (BaseXCom)")},
    "airflow.utils.weight_rule": {"WeightRule": _t(_TOP, "WeightRule", "WeightRule")},
    "airflow.task.weight_rule": {"WeightRule": _t(_TOP, "WeightRule", "WeightRule")},
    "airflow.utils.task_group": {"TaskGroup": _t(_TOP, "TaskGroup", "task groups (TaskGroup)")},
    "airflow.utils.edgemodifier": {"Label": _t(_TOP, "Label", "edge labels (Label)")},
    "airflow.utils.dates": {"days_ago": _t(_DATES, "days_ago", "days_ago()")},
    "airflow.utils.weekday": {"WeekDay": _t(_OPS, "WeekDay", "WeekDay")},
    "airflow.providers.standard.utils.weekday": {"WeekDay": _t(_OPS, "WeekDay", "WeekDay")},
    "airflow.utils.timezone": {
        name: _t("headrace.compat.timezone", name, f"airflow.utils.timezone.{name}")
        for name in ("utc", "utcnow", "datetime", "make_aware", "convert_to_utc", "is_localized", "parse")
    },
}
for _prefix in ("airflow.operators", "airflow.providers.standard.operators"):
    for _name, _names in _OPERATOR_MODULES.items():
        MODULES.setdefault(f"{_prefix}.{_name}", _names)
MODULES["airflow.providers.standard.operators.python"] = _PYTHON_OPERATORS
# Airflow 1.10's module names, still importable (deprecated) throughout Airflow 2.
for _old, _new in (
    ("bash_operator", "bash"),
    ("python_operator", "python"),
    ("email_operator", "smtp"),
    ("latest_only_operator", "latest_only"),
    ("dagrun_operator", "trigger_dagrun"),
):
    MODULES[f"airflow.operators.{_old}"] = _OPERATOR_MODULES[_new]
MODULES["airflow.operators.dummy_operator"] = MODULES["airflow.operators.dummy"]
for _name, _names in _SENSOR_MODULES.items():
    MODULES[f"airflow.providers.standard.sensors.{_name}"] = _names
    MODULES[f"airflow.sensors.{'time_sensor' if _name == 'time' else _name}"] = _names
for _prefix in ("airflow.triggers", "airflow.providers.standard.triggers"):
    for _name, _names in _TRIGGER_MODULES.items():
        MODULES[f"{_prefix}.{_name}"] = _names
MODULES["airflow.sdk.bases.sensor"] = _SENSOR_MODULES["base"]
MODULES["airflow.sensors.base_sensor_operator"] = _SENSOR_MODULES["base"]  # Airflow 1.10's, kept by Airflow 2
MODULES["airflow.sensors.external_task_sensor"] = _SENSOR_MODULES["external_task"]  # likewise
MODULES["airflow.providers.standard.exceptions"] = {
    name: _t(_SENS, name, f"the {name}")
    for name in (
        "ExternalDagNotFoundError",
        "ExternalDagDeletedError",
        "ExternalTaskNotFoundError",
        "ExternalTaskGroupNotFoundError",
        "ExternalTaskFailedError",
        "ExternalTaskGroupFailedError",
        "ExternalDagFailedError",
    )
}

UNSUPPORTED_MODULES: dict[str, str] = {
    "airflow.contrib": "Airflow 1's contrib modules (removed in Airflow 2; their providers are not supported either)",
    "airflow.operators.subdag": "SubDAGs (removed in Airflow 3: use task groups)",
    "airflow.sensors": "this sensor (headrace has the standard sensors: see headrace.sensors)",
    "airflow.providers.standard.sensors": "this sensor (headrace has the standard sensors: see headrace.sensors)",
    "airflow.triggers": "this trigger (headrace has the standard triggers: see headrace.triggers)",
    "airflow.providers.standard.triggers": "this trigger (headrace has the standard triggers: see headrace.triggers)",
    "airflow.hooks": "this hook (headrace has BaseHook and the SQL hooks)",
    "airflow.providers.standard.hooks": "the standard provider's hooks",
    "airflow.providers.common.sql": "this part of the common SQL provider (headrace has SQLExecuteQueryOperator "
    "and the SQL hooks)",
    "airflow.settings": "Airflow's settings module (DAG files read headrace's configuration through the CLI and API)",
    "airflow.configuration": "Airflow's configuration module",
    "airflow.plugins_manager": "plugins",
    "airflow.listeners": "listeners",
    "airflow.models.dagrun": "reading the metadata database from DAG files (DagRun)",
    "airflow.models.taskinstance": "reading the metadata database from DAG files (TaskInstance)",
    "airflow.models.xcom": "reading the metadata database from DAG files (XCom)",
    "airflow.utils.session": "reading the metadata database from DAG files (sessions)",
    "airflow.utils.db": "reading the metadata database from DAG files",
    "airflow.utils.state": "Airflow's state module (use headrace.states)",
    "airflow.example_dags": "Airflow's example DAGs",
}


def _parents() -> frozenset[str]:
    found: set[str] = set()
    for module in MODULES:
        parts = module.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(found)


PACKAGES = _parents() | frozenset(MODULES)
"""Every Airflow module the finder provides: those of the table and the packages above them."""


def unsupported_module_feature(module: str) -> str | None:
    """The feature an Airflow module belongs to, when headrace has nothing for it; None for a known module.

    ``airflow.providers.<name>…`` outside the table is ``the <name> provider``;
    any other unknown ``airflow.…`` module is reported by its own name.
    """
    if module in PACKAGES:
        return None
    for prefix, feature in UNSUPPORTED_MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            return feature
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["airflow", "providers"]:
        return f"the {parts[2]} provider"
    return f"the module {module}"


def resolve(module: str, name: str) -> Any:
    """The headrace object for ``from <module> import <name>``.

    Raises :class:`NotSupported` (an ``ImportError``) naming the feature when
    headrace has no implementation of it, and ``AttributeError`` when the name
    is not one Airflow defines in that module either (not in the table).
    """
    targets = MODULES.get(module)
    if targets is None:
        raise NotSupported(f"{module}.{name}", unsupported_module_feature(module) or f"the module {module}")
    target = targets.get(name)
    if target is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r} in headrace's Airflow mapping")
    return resolve_target(f"{module}.{name}", target)


def resolve_target(airflow_name: str, target: Target) -> Any:
    """Import ``target``; raises :class:`NotSupported` (naming ``airflow_name``) when headrace lacks it."""
    try:
        owner = importlib.import_module(target.module)
        return getattr(owner, target.attr)
    except (ImportError, AttributeError):
        raise NotSupported(airflow_name, target.feature) from None


def is_available(target: Target) -> bool:
    """Whether headrace implements ``target`` (its module imports and has the attribute)."""
    try:
        resolve_target(target.attr, target)
    except NotSupported:
        return False
    return True
