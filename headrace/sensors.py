"""The sensors, at their public import path: ``from headrace.sensors import FileSensor``.

``BaseSensorOperator`` and ``PokeReturnValue`` are also exported by ``headrace`` itself (as by ``airflow.sdk``);
``@task.sensor`` makes a function a sensor. See ``docs/sensors.md``.
"""

from __future__ import annotations

from headrace.authoring.branching import WeekDay
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
    "FileSensor",
    "PokeReturnValue",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
    "WeekDay",
    "poke_mode_only",
]
