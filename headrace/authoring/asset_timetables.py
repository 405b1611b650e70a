"""The timetables of asset-scheduled DAGs: ``schedule=[asset, ...]`` and ``AssetOrTimeSchedule``.

* :class:`AssetTriggeredTimetable` — ``schedule=[a, b]`` (all of them), ``schedule=a | b``,
  ``schedule=AssetAll(...)``: the scheduler never creates a time-based run; an ``asset_triggered`` run is
  created when the condition is met by asset events since the DAG's previous asset-triggered run.
* :class:`AssetOrTimeSchedule` — ``AssetOrTimeSchedule(timetable=CronTriggerTimetable(...), assets=[...])``:
  runs on the timetable's schedule (``scheduled`` runs) *and* when the asset condition is met.

Both carry :attr:`asset_condition`, which the DAG processor records and the scheduler evaluates.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, tzinfo
from typing import Any

from headrace.authoring.assets import BaseAsset, as_condition, asset_from_json
from headrace.authoring.schedules import DagRunInfo, DataInterval, TimeRestriction, Timetable
from headrace.authoring.timetables import deserialize_timetable, make_timetable, serialize_timetable
from headrace.exceptions import ScheduleError


class AssetTriggeredTimetable(Timetable):
    """Runs only when its asset condition is met (Airflow's ``AssetTriggeredTimetable``)."""

    periodic = False
    can_be_scheduled = False
    run_ordering = ("logical_date",)
    description = "Triggered by assets"

    def __init__(self, asset_condition: BaseAsset) -> None:
        if not isinstance(asset_condition, BaseAsset):
            raise ScheduleError(f"an asset schedule needs assets, got {type(asset_condition).__name__}")
        self.asset_condition: BaseAsset | None = asset_condition

    @property
    def summary(self) -> str:
        return "Asset"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return None

    def serialize(self) -> dict[str, Any]:
        assert self.asset_condition is not None
        return {"asset_condition": self.asset_condition.as_json()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(asset_from_json(data["asset_condition"]))


DatasetTriggeredTimetable = AssetTriggeredTimetable
"""Airflow 2's name."""


class AssetOrTimeSchedule(Timetable):
    """Runs on ``timetable``'s schedule and whenever the asset condition ``assets`` is met.

    ``assets``: one asset or condition, or a collection of assets (all of them, as in ``schedule=[...]``).
    Time-based runs are ``scheduled``, asset-based ones ``asset_triggered``. Raises ``ScheduleError`` when
    ``timetable`` is not a Timetable or ``assets`` holds no asset.
    """

    def __init__(self, *, timetable: Timetable, assets: Collection[BaseAsset] | BaseAsset) -> None:
        if not isinstance(timetable, Timetable):
            raise ScheduleError(f"AssetOrTimeSchedule: timetable must be a Timetable, got {type(timetable).__name__}")
        condition = assets if isinstance(assets, BaseAsset) else as_condition(list(assets))
        if condition is None:
            raise ScheduleError("AssetOrTimeSchedule: assets must be an asset, a condition or a list of assets")
        self.timetable = timetable
        self.asset_condition: BaseAsset | None = condition
        self.periodic = timetable.periodic
        self.can_be_scheduled = timetable.can_be_scheduled
        self.run_ordering = timetable.run_ordering
        self.active_runs_limit = timetable.active_runs_limit
        self.description = f"Triggered by assets or {timetable.description or timetable.summary}"

    @property
    def summary(self) -> str:
        return f"Asset or {self.timetable.summary}"

    def validate(self) -> None:
        self.timetable.validate()

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return self.timetable.infer_manual_data_interval(run_after=run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return self.timetable.next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )

    def serialize(self) -> dict[str, Any]:
        assert self.asset_condition is not None
        return {"timetable": serialize_timetable(self.timetable), "asset_condition": self.asset_condition.as_json()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(timetable=deserialize_timetable(data["timetable"]), assets=asset_from_json(data["asset_condition"]))


DatasetOrTimeSchedule = AssetOrTimeSchedule
"""Airflow 2's name."""


def asset_condition_of(timetable: Timetable) -> BaseAsset | None:
    """The asset condition a DAG's timetable runs on, or None for a time-only timetable."""
    return getattr(timetable, "asset_condition", None)


def make_any_timetable(schedule: Any, tz: tzinfo) -> Timetable:
    """The timetable of ``DAG(schedule=...)``: an asset schedule (a list of assets, an asset, a condition)
    gives an :class:`AssetTriggeredTimetable`, anything else :func:`~headrace.authoring.timetables.make_timetable`.

    Raises ``ScheduleError`` for a bad schedule.
    """
    try:
        condition = as_condition(schedule)
    except TypeError as exc:
        raise ScheduleError(f"bad asset schedule: {exc}") from None
    return make_timetable(schedule, tz) if condition is None else AssetTriggeredTimetable(condition)


__all__ = [
    "AssetOrTimeSchedule",
    "AssetTriggeredTimetable",
    "DatasetOrTimeSchedule",
    "DatasetTriggeredTimetable",
    "asset_condition_of",
    "make_any_timetable",
]
