"""Airflow 3's timetables: trigger and data-interval meanings, catchup, DST, events, several crons, @continuous.

Dates are checked against what Airflow 3 documents for the same schedule (a cron string is a
``CronTriggerTimetable``: the run fires at the cron time and its logical date is that time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta

from headrace.authoring.dag import DAG
from headrace.authoring.schedules import DagRunInfo, DataInterval, Timetable
from headrace.authoring.timetables import (
    ContinuousTimetable,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaDataIntervalTimetable,
    DeltaTriggerTimetable,
    EventsTimetable,
    MultipleCronTriggerTimetable,
    deserialize_timetable,
    make_timetable,
    serialize_timetable,
)
from headrace.exceptions import DagDefinitionError, ScheduleError

AMS = ZoneInfo("Europe/Amsterdam")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fired(
    tt: Timetable, *, start: datetime | None, now: datetime, catchup: bool = True, limit: int = 50
) -> list[DagRunInfo]:
    """Every run the timetable makes, one after another, until none is due at ``now``."""
    out: list[DagRunInfo] = []
    last = None
    while len(out) < limit:
        info = tt.next_run(last, start_date=start, end_date=None, catchup=catchup, now=now)
        if info is None:
            break
        out.append(info)
        last = info.data_interval
    return out


def test_a_cron_string_is_a_trigger_timetable_by_default_and_a_data_interval_one_on_request() -> None:
    assert isinstance(make_timetable("@daily"), CronTriggerTimetable)
    assert isinstance(make_timetable("@daily", create_cron_data_intervals=True), CronDataIntervalTimetable)
    assert isinstance(make_timetable(timedelta(hours=1)), DeltaTriggerTimetable)
    assert isinstance(make_timetable(timedelta(hours=1), create_delta_data_intervals=True), DeltaDataIntervalTimetable)
    assert isinstance(make_timetable(relativedelta(months=1)), DeltaTriggerTimetable)
    assert isinstance(make_timetable("@continuous"), ContinuousTimetable)


def test_daily_trigger_runs_at_midnight_with_that_midnight_as_its_logical_date() -> None:
    """The difference the issue names: Airflow 3 runs the 2024-01-02 run at 2024-01-02 00:00, ds 2024-01-02."""
    trigger = fired(make_timetable("@daily"), start=utc(2024, 1, 1), now=utc(2024, 1, 3, 0, 30))
    assert [(i.logical_date, i.run_after) for i in trigger] == [(utc(2024, 1, d), utc(2024, 1, d)) for d in (1, 2, 3)]
    assert all(i.data_interval == DataInterval.exact(i.logical_date) for i in trigger)
    intervals = fired(
        make_timetable("@daily", create_cron_data_intervals=True), start=utc(2024, 1, 1), now=utc(2024, 1, 3, 0, 30)
    )
    assert [(i.logical_date, i.run_after) for i in intervals] == [
        (utc(2024, 1, 1), utc(2024, 1, 2)),
        (utc(2024, 1, 2), utc(2024, 1, 3)),
    ]


def test_trigger_without_catchup_runs_the_latest_fire_time_then_waits() -> None:
    tt = make_timetable("0 6 * * *")
    got = fired(tt, start=utc(2024, 1, 1), now=utc(2024, 3, 10, 7), catchup=False)
    assert [i.logical_date for i in got] == [utc(2024, 3, 10, 6)]
    coming = tt.next_run_info(
        got[0].data_interval, start_date=utc(2024, 1, 1), end_date=None, catchup=False, now=utc(2024, 3, 10, 7)
    )
    assert coming is not None and coming.run_after == utc(2024, 3, 11, 6)


def test_trigger_interval_sets_the_data_interval_before_the_fire_time() -> None:
    tt = CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1))
    [first, *_] = fired(tt, start=utc(2024, 1, 1), now=utc(2024, 1, 1, 2))
    assert first.run_after == utc(2024, 1, 1) and first.data_interval == DataInterval(
        utc(2023, 12, 31, 23), utc(2024, 1, 1)
    )
    assert tt.infer_manual_data_interval(run_after=utc(2024, 5, 1, 12, 7)) == DataInterval(
        utc(2024, 5, 1, 11, 7), utc(2024, 5, 1, 12, 7)
    )


def test_trigger_fires_at_local_time_across_both_dst_changes() -> None:
    # 02:30 Amsterdam every day. 2024-03-31 02:30 does not exist (moves to 03:30); 2024-10-27 has 02:30 twice.
    tt = CronTriggerTimetable("30 2 * * *", timezone=AMS)
    spring = fired(tt, start=datetime(2024, 3, 29, tzinfo=AMS), now=utc(2024, 4, 2))
    local = [(i.logical_date.astimezone(AMS).day, i.logical_date.astimezone(AMS).hour) for i in spring]
    assert local == [(29, 2), (30, 2), (31, 3), (1, 2)]
    autumn = fired(tt, start=datetime(2024, 10, 26, tzinfo=AMS), now=utc(2024, 10, 29))
    assert [i.logical_date.astimezone(AMS).day for i in autumn] == [26, 27, 28]  # once a day, none twice
    assert all(i.logical_date.tzinfo == UTC for i in spring + autumn)


def test_hourly_trigger_across_fall_back_neither_skips_nor_repeats_an_hour() -> None:
    tt = CronTriggerTimetable("@hourly", timezone=AMS)
    got = fired(tt, start=utc(2024, 10, 26, 23), now=utc(2024, 10, 27, 3))
    assert [i.logical_date for i in got] == [utc(2024, 10, 26, 23)] + [utc(2024, 10, 27, h) for h in range(4)]


def test_delta_trigger_runs_every_delta_from_start_and_at_once_without_catchup() -> None:
    tt = DeltaTriggerTimetable(timedelta(hours=5))
    got = fired(tt, start=utc(2024, 1, 1, 1), now=utc(2024, 1, 1, 12))
    assert [i.logical_date for i in got] == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 6), utc(2024, 1, 1, 11)]
    [now_run] = fired(tt, start=utc(2024, 1, 1, 1), now=utc(2024, 1, 1, 12), catchup=False, limit=1)
    assert now_run.logical_date == utc(2024, 1, 1, 12)


def test_relativedelta_schedules_follow_the_calendar() -> None:
    trigger = fired(make_timetable(relativedelta(months=1)), start=utc(2024, 1, 31), now=utc(2024, 4, 1))
    assert [i.logical_date for i in trigger] == [utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 29)]
    intervals = fired(
        make_timetable(relativedelta(months=1), create_delta_data_intervals=True),
        start=utc(2024, 1, 1),
        now=utc(2024, 4, 2),
    )
    assert [(i.data_interval.start.month, i.data_interval.end.month) for i in intervals] == [(1, 2), (2, 3), (3, 4)]
    with pytest.raises(ScheduleError, match="positive"):
        make_timetable(relativedelta(months=-1))


def test_multiple_crons_fire_once_when_two_coincide() -> None:
    tt = MultipleCronTriggerTimetable("0 0 * * *", "0 0,12 * * *", timezone="UTC")
    got = fired(tt, start=utc(2024, 1, 1), now=utc(2024, 1, 2, 13))
    assert [i.logical_date for i in got] == [utc(2024, 1, 1), utc(2024, 1, 1, 12), utc(2024, 1, 2), utc(2024, 1, 2, 12)]
    [latest] = fired(tt, start=utc(2024, 1, 1), now=utc(2024, 1, 2, 13), catchup=False, limit=1)
    assert latest.logical_date == utc(2024, 1, 2, 12)
    assert tt.summary == "0 0 * * *, 0 0,12 * * *"
    with pytest.raises(ScheduleError, match="at least one"):
        MultipleCronTriggerTimetable(timezone="UTC")


def test_events_run_at_each_event_in_order_and_skip_the_past_without_catchup() -> None:
    events = [utc(2024, 3, 1), utc(2024, 1, 1), utc(2024, 2, 1), utc(2025, 1, 1)]
    tt = EventsTimetable(events, description="quarter closes")
    assert [i.logical_date for i in fired(tt, start=utc(2023, 1, 1), now=utc(2024, 6, 1))] == [
        utc(2024, 1, 1),
        utc(2024, 2, 1),
        utc(2024, 3, 1),
    ]
    assert [i.logical_date for i in fired(tt, start=utc(2023, 1, 1), now=utc(2024, 6, 1), catchup=False)] == [
        utc(2024, 3, 1)
    ]
    assert tt.summary == "quarter closes"
    restricted = EventsTimetable(events, restrict_to_events=True)
    assert restricted.infer_manual_data_interval(run_after=utc(2024, 2, 15)) == DataInterval.exact(utc(2024, 2, 1))


def test_continuous_runs_back_to_back_and_allows_one_active_run() -> None:
    tt = make_timetable("@continuous")
    first = tt.next_run_info(None, start_date=utc(2024, 1, 1), end_date=None, catchup=False, now=utc(2024, 1, 5))
    assert first is not None and first.data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 5))
    second = tt.next_run_info(
        first.data_interval, start_date=utc(2024, 1, 1), end_date=None, catchup=False, now=utc(2024, 1, 5, 0, 1)
    )
    assert second is not None and second.data_interval == DataInterval(utc(2024, 1, 5), utc(2024, 1, 5, 0, 1))
    with DAG("cont", schedule="@continuous", start_date=utc(2024, 1, 1)) as dag:
        pass
    assert dag.max_active_runs == 1
    with pytest.raises(DagDefinitionError, match="allows at most 1 active run"):
        DAG("cont2", schedule="@continuous", start_date=utc(2024, 1, 1), max_active_runs=3)


@pytest.mark.parametrize(
    "timetable",
    [
        CronTriggerTimetable(
            "30 2 * * 1-5", timezone=AMS, interval=timedelta(hours=2), run_immediately=timedelta(minutes=9)
        ),
        CronDataIntervalTimetable("@hourly", AMS),
        DeltaTriggerTimetable(relativedelta(months=1, days=2), interval=timedelta(days=1)),
        DeltaDataIntervalTimetable(timedelta(minutes=90)),
        MultipleCronTriggerTimetable("0 1 * * *", "0 13 * * *", timezone="UTC"),
        EventsTimetable([utc(2024, 1, 1), utc(2024, 6, 1)], restrict_to_events=True, description="two"),
        ContinuousTimetable(),
    ],
    ids=lambda t: type(t).__name__,
)
def test_every_built_in_timetable_reads_back_equal(timetable: Timetable) -> None:
    data = serialize_timetable(timetable)
    assert data["__type"] == f"{type(timetable).__module__}.{type(timetable).__name__}"
    assert data["__type"].startswith("headrace.authoring.")
    again = deserialize_timetable(data)
    assert type(again) is type(timetable) and again == timetable and again.summary == timetable.summary


def test_earlier_stored_layouts_keep_their_data_interval_meaning() -> None:
    """DAG versions stored before Airflow 3's timetables read back as what they meant then."""
    cron = deserialize_timetable({"type": "cron", "expression": "@daily", "timezone": "Europe/Amsterdam"})
    assert isinstance(cron, CronDataIntervalTimetable) and cron.summary == "@daily"
    delta = deserialize_timetable({"type": "delta", "seconds": 3600.0})
    assert isinstance(delta, DeltaDataIntervalTimetable)


def test_an_unknown_or_unimportable_class_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="cannot be imported: ModuleNotFoundError"):
        deserialize_timetable({"__type": "nowhere_to_be_found.Lunar", "__var": {}})
    with pytest.raises(ScheduleError, match="is not a Timetable subclass"):
        deserialize_timetable({"__type": "datetime.datetime", "__var": {}})
    with pytest.raises(ScheduleError, match="CronTriggerTimetable.deserialize failed: KeyError"):
        deserialize_timetable({"__type": "headrace.authoring.timetables.CronTriggerTimetable", "__var": {}})


def test_hourly_on_weekdays_fires_on_weekdays_only_across_dst() -> None:
    """An every-hour cron limited to Monday-Friday: the weekend jump is wall-clock, the hours absolute."""
    berlin = ZoneInfo("Europe/Berlin")
    for start, now in ((utc(2024, 10, 25, 18), utc(2024, 10, 28, 3)), (utc(2024, 3, 29, 18), utc(2024, 4, 1, 3))):
        tt = CronTriggerTimetable("0 * * * 1-5", timezone=berlin)
        got = [i.logical_date for i in fired(tt, start=start, now=now, limit=200)]
        local = [d.astimezone(berlin) for d in got]
        assert all(d.weekday() < 5 and d.minute == 0 for d in local), [d for d in local if d.weekday() >= 5]
        assert local[-1].weekday() == 0 and local[-1].hour == (now.astimezone(berlin)).hour  # Monday, up to now
        friday = [d for d in local if d.weekday() == 4]
        assert [d.hour for d in friday] == list(range(friday[0].hour, 24))  # each hour once, none skipped


def test_a_daily_time_in_the_repeated_hour_fires_once_and_steps_both_ways() -> None:
    new_york = ZoneInfo("America/New_York")  # 2024-11-03 01:00-02:00 happens twice
    tt = CronTriggerTimetable("30 1 * * *", timezone=new_york)
    inside = utc(2024, 11, 3, 6, 15)  # 01:15 EST, the second 01:xx
    nxt = tt.next_run_info(
        DataInterval.exact(inside), start_date=utc(2024, 11, 1), end_date=None, catchup=True, now=utc(2024, 11, 5)
    )
    assert nxt is not None and nxt.logical_date == utc(2024, 11, 4, 6, 30)  # tomorrow 01:30 EST, not again today
    [latest] = fired(tt, start=utc(2024, 11, 1), now=inside, catchup=False, limit=1)
    assert latest.logical_date == utc(2024, 11, 3, 5, 30)  # today's 01:30 EDT, which fired 45 minutes ago


def test_delta_intervals_of_a_relativedelta_are_found_quickly_and_manual_runs_need_no_anchor() -> None:
    tt = DeltaDataIntervalTimetable(relativedelta(hours=1))
    # Years of hourly steps from the anchor: found by estimate and correction, not one step at a time.
    got = fired(tt, start=utc(2000, 1, 1), now=utc(2024, 6, 1, 12, 30), catchup=False)
    assert [i.data_interval for i in got] == [DataInterval(utc(2024, 6, 1, 11), utc(2024, 6, 1, 12))]
    fresh = deserialize_timetable(serialize_timetable(DeltaDataIntervalTimetable(timedelta(days=1))))
    assert fresh.infer_manual_data_interval(run_after=utc(2024, 6, 1, 12)) == DataInterval(
        utc(2024, 5, 31, 12), utc(2024, 6, 1, 12)
    )
