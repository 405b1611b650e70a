"""The sensors, at their public import path: ``from headrace.sensors import FileSensor``.

``BaseSensorOperator`` and ``PokeReturnValue`` are also exported by ``headrace`` itself (as by ``airflow.sdk``);
``@task.sensor`` makes a function a sensor. ``ExternalTaskSensor`` / ``ExternalTaskMarker``: cross-DAG
dependencies by logical date. See ``docs/sensors.md``.
"""

from __future__ import annotations

from headrace.authoring.branching import WeekDay
from headrace.authoring.external_task import (
    ExternalDagDeletedError,
    ExternalDagFailedError,
    ExternalDagNotFoundError,
    ExternalTaskFailedError,
    ExternalTaskGroupFailedError,
    ExternalTaskGroupNotFoundError,
    ExternalTaskMarker,
    ExternalTaskNotFoundError,
    ExternalTaskSensor,
)
from headrace.authoring.sensors import BaseSensorOperator, PokeReturnValue, poke_mode_only
from headrace.authoring.standard_sensors import (
    BashSensor,
    DateTimeSensor,
    DayOfWeekSensor,
    FileSensor,
    PythonSensor,
    TimeDeltaSensor,
    TimeSensor,
)

__all__ = [
    "BaseSensorOperator",
    "BashSensor",
    "DateTimeSensor",
    "DayOfWeekSensor",
    "ExternalDagDeletedError",
    "ExternalDagFailedError",
    "ExternalDagNotFoundError",
    "ExternalTaskFailedError",
    "ExternalTaskGroupFailedError",
    "ExternalTaskGroupNotFoundError",
    "ExternalTaskMarker",
    "ExternalTaskNotFoundError",
    "ExternalTaskSensor",
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
    "WeekDay",
    "poke_mode_only",
]
