"""The timetables, at their public import path: ``from headrace.timetables import CronTriggerTimetable``.

``DAG(schedule=...)`` takes a cron string, a preset, a ``timedelta`` / ``relativedelta``, ``None``,
``"@once"``, ``"@continuous"``, assets (a list, ``a | b``: :class:`AssetTriggeredTimetable`) or one of these (or a subclass of :class:`Timetable`); see
:mod:`headrace.authoring.timetables` for what each means.
"""

from __future__ import annotations

from headrace.authoring.asset_timetables import (
    AssetOrTimeSchedule,
    AssetTriggeredTimetable,
    DatasetOrTimeSchedule,
    DatasetTriggeredTimetable,
)
from headrace.authoring.schedules import DagRunInfo, DataInterval, TimeRestriction, Timetable
from headrace.authoring.timetables import (
    ContinuousTimetable,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaDataIntervalTimetable,
    DeltaTriggerTimetable,
    EventsTimetable,
    MultipleCronTriggerTimetable,
    NullTimetable,
    OnceTimetable,
)

__all__ = [
    "AssetOrTimeSchedule",
    "AssetTriggeredTimetable",
    "DatasetOrTimeSchedule",
    "DatasetTriggeredTimetable",
    "ContinuousTimetable",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DagRunInfo",
    "DataInterval",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
    "NullTimetable",
    "OnceTimetable",
    "TimeRestriction",
    "Timetable",
]
