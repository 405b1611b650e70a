from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from headrace.authoring.schedules import DataInterval
from headrace.authoring.timetables import (
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
    deserialize_timetable,
    make_timetable,
    serialize_timetable,
)
from headrace.exceptions import ScheduleError

UTC = UTC
AMS = ZoneInfo("Europe/Amsterdam")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(
    schedule: object,
    *,
    start: datetime,
    now: datetime,
    catchup: bool = True,
    end: datetime | None = None,
    tz: object = UTC,
    limit: int = 50,
) -> list[DataInterval]:
    """Every run the data-interval timetable (Airflow 2's meaning) creates, one after another, until none is due."""
    tt = make_timetable(schedule, tz, create_cron_data_intervals=True, create_delta_data_intervals=True)  # type: ignore[arg-type]
    out: list[DataInterval] = []
    last = None
    while len(out) < limit:
        info = tt.next_run(last, start_date=start, end_date=end, catchup=catchup, now=now)
        if info is None:
            break
        assert info.logical_date == info.data_interval.start
        out.append(info.data_interval)
        last = info.data_interval
    return out


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("61 * * * *", "invalid cron expression '61 * * * *'"),
        ("* * *", "invalid cron expression '* * *'"),
        ("* * * * * *", "expected 5 fields"),
        ("every day", "invalid cron expression 'every day'"),
        ("@fortnightly", "unknown schedule preset '@fortnightly'"),
    ],
)
def test_bad_cron_strings_raise_schedule_error(bad: str, fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment.replace("*", r"\*").replace("(", r"\(")):
        make_timetable(bad)


def test_bad_schedule_types() -> None:
    with pytest.raises(ScheduleError, match="must be a cron string"):
        make_timetable(3)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="positive"):
        make_timetable(timedelta(0))


def test_kinds_and_summaries() -> None:
    assert isinstance(make_timetable(None), NullTimetable)
    assert isinstance(make_timetable("@once"), OnceTimetable)
    assert isinstance(make_timetable("@daily", create_cron_data_intervals=True), CronDataIntervalTimetable)
    assert isinstance(make_timetable(timedelta(hours=1), create_delta_data_intervals=True), DeltaDataIntervalTimetable)
    assert make_timetable("*/5 * * * *").summary == "*/5 * * * *"
    assert make_timetable("@daily").summary == "@daily"


def test_data_interval_is_prev_to_next_fire_and_due_at_its_end() -> None:
    tt = make_timetable("@daily", create_cron_data_intervals=True)
    start = utc(2024, 1, 1)
    assert tt.next_run(None, start_date=start, end_date=None, catchup=True, now=utc(2024, 1, 1, 23, 59)) is None
    info = tt.next_run(None, start_date=start, end_date=None, catchup=True, now=utc(2024, 1, 2))
    assert info is not None
    assert info.logical_date == utc(2024, 1, 1)
    assert info.data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    assert info.run_after == utc(2024, 1, 2)


def test_catchup_true_runs_every_interval_from_start_date() -> None:
    got = runs("@daily", start=utc(2024, 1, 1), now=utc(2024, 1, 4, 12))
    assert [i.start for i in got] == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert got[-1].end == utc(2024, 1, 4)


def test_catchup_aligns_an_off_schedule_start_date_to_the_next_fire() -> None:
    got = runs("0 6 * * *", start=utc(2024, 1, 1, 9), now=utc(2024, 1, 4))
    assert [i.start for i in got] == [utc(2024, 1, 2, 6)]


def test_catchup_false_runs_only_the_latest_complete_interval() -> None:
    got = runs("@daily", start=utc(2024, 1, 1), now=utc(2024, 1, 10, 12), catchup=False)
    assert got == [DataInterval(utc(2024, 1, 9), utc(2024, 1, 10))]


def test_catchup_false_on_a_boundary() -> None:
    got = runs("@hourly", start=utc(2024, 1, 1), now=utc(2024, 1, 2, 5), catchup=False)
    assert got == [DataInterval(utc(2024, 1, 2, 4), utc(2024, 1, 2, 5))]


def test_catchup_false_after_downtime_skips_missed_intervals() -> None:
    tt = make_timetable("@daily", create_cron_data_intervals=True)
    last = DataInterval(utc(2024, 1, 2), utc(2024, 1, 3))
    info = tt.next_run(last, start_date=utc(2024, 1, 1), end_date=None, catchup=False, now=utc(2024, 1, 8, 1))
    assert info is not None and info.logical_date == utc(2024, 1, 7)
    info = tt.next_run(last, start_date=utc(2024, 1, 1), end_date=None, catchup=True, now=utc(2024, 1, 8, 1))
    assert info is not None and info.logical_date == utc(2024, 1, 3)


def test_catchup_false_before_first_interval_ends() -> None:
    tt = make_timetable("@daily", create_cron_data_intervals=True)
    kw = dict(start_date=utc(2024, 1, 1), end_date=None, catchup=False)
    assert tt.next_run(None, now=utc(2024, 1, 1, 12), **kw) is None  # type: ignore[arg-type]
    assert tt.next_run_after(None, now=utc(2024, 1, 1, 12), **kw) == utc(2024, 1, 2)  # type: ignore[arg-type]


def test_next_run_after_tells_when_to_wake_up() -> None:
    tt = make_timetable("*/15 * * * *", create_cron_data_intervals=True)
    last = DataInterval(utc(2024, 1, 1, 10), utc(2024, 1, 1, 10, 15))
    kw = dict(start_date=utc(2024, 1, 1), end_date=None, catchup=False)
    assert tt.next_run(last, now=utc(2024, 1, 1, 10, 20), **kw) is None  # type: ignore[arg-type]
    assert tt.next_run_after(last, now=utc(2024, 1, 1, 10, 20), **kw) == utc(2024, 1, 1, 10, 30)  # type: ignore[arg-type]


def test_end_date_stops_runs() -> None:
    got = runs("@daily", start=utc(2024, 1, 1), end=utc(2024, 1, 3), now=utc(2024, 2, 1))
    assert [i.start for i in got] == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]


def test_no_start_date_means_no_runs() -> None:
    tt = make_timetable("@daily", create_cron_data_intervals=True)
    assert tt.next_run(None, start_date=None, end_date=None, catchup=True, now=utc(2024, 1, 1)) is None


def test_null_timetable_never_runs() -> None:
    assert runs(None, start=utc(2024, 1, 1), now=utc(2030, 1, 1)) == []


def test_once_runs_once_at_start_date() -> None:
    assert runs("@once", start=utc(2024, 1, 1), now=utc(2023, 12, 31)) == []
    got = runs("@once", start=utc(2024, 1, 1), now=utc(2024, 6, 1))
    assert got == [DataInterval(utc(2024, 1, 1), utc(2024, 1, 1))]


def test_timedelta_intervals_are_anchored_at_start_date() -> None:
    got = runs(timedelta(hours=5), start=utc(2024, 1, 1, 1), now=utc(2024, 1, 1, 16))
    assert [(i.start, i.end) for i in got] == [
        (utc(2024, 1, 1, 1), utc(2024, 1, 1, 6)),
        (utc(2024, 1, 1, 6), utc(2024, 1, 1, 11)),
        (utc(2024, 1, 1, 11), utc(2024, 1, 1, 16)),
    ]
    latest = runs(timedelta(hours=5), start=utc(2024, 1, 1, 1), now=utc(2024, 1, 1, 18), catchup=False)
    assert latest == [DataInterval(utc(2024, 1, 1, 11), utc(2024, 1, 1, 16))]


def test_naive_now_and_start_are_utc() -> None:
    got = runs("@daily", start=datetime(2024, 1, 1), now=datetime(2024, 1, 2, 1))
    assert got == [DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))]
    assert got[0].start.tzinfo is not None


def test_cron_runs_in_the_dags_time_zone_across_dst() -> None:
    # 02:00 Amsterdam every day: 01:00 UTC in winter, 00:00 UTC in summer.
    got = runs("0 2 * * *", start=datetime(2024, 3, 29, tzinfo=AMS), now=utc(2024, 4, 2), tz=AMS)
    assert [i.start.astimezone(AMS).hour for i in got[:1]] == [2]
    assert [i.start for i in got] == [
        utc(2024, 3, 29, 1),
        utc(2024, 3, 30, 1),
        # 2024-03-31 02:00 does not exist in Amsterdam: moved past the gap to 03:00 CEST.
        utc(2024, 3, 31, 1),
        utc(2024, 4, 1, 0),
    ]
    assert all(i.start.tzinfo == UTC for i in got)
    assert got[2].start.astimezone(AMS).hour == 3


def test_daily_cron_over_fall_back_fires_once_a_day() -> None:
    got = runs("30 1 * * *", start=datetime(2024, 10, 25, tzinfo=AMS), now=utc(2024, 10, 29), tz=AMS)
    local = [i.start.astimezone(AMS) for i in got]
    assert [(d.day, d.hour, d.minute) for d in local] == [(25, 1, 30), (26, 1, 30), (27, 1, 30)]
    assert got[2].end - got[2].start == timedelta(hours=25)  # the day with the extra hour


def test_hourly_cron_over_fall_back_neither_skips_nor_repeats() -> None:
    got = runs("@hourly", start=utc(2024, 10, 26, 23), now=utc(2024, 10, 27, 4), tz=AMS)
    assert [i.start for i in got] == [utc(2024, 10, 26, 23)] + [utc(2024, 10, 27, h) for h in range(4)]
    assert all(i.end - i.start == timedelta(hours=1) for i in got)


def test_hourly_cron_over_spring_forward() -> None:
    got = runs("0 * * * *", start=utc(2024, 3, 30, 23), now=utc(2024, 3, 31, 3), tz=AMS)
    assert [i.start for i in got] == [
        utc(2024, 3, 30, 23),
        utc(2024, 3, 31, 0),
        utc(2024, 3, 31, 1),
        utc(2024, 3, 31, 2),
    ]


@pytest.mark.parametrize("schedule", [None, "@once", "@daily", "*/10 2-4 * * 1-5", timedelta(minutes=90)])
def test_serialize_round_trip(schedule: object) -> None:
    tt = make_timetable(schedule, AMS)  # type: ignore[arg-type]
    again = deserialize_timetable(serialize_timetable(tt))
    assert again == tt
    assert again.summary == tt.summary


def test_serialize_keeps_time_zone_and_offsets() -> None:
    fixed = timezone(timedelta(hours=-3, minutes=-30))
    tt = make_timetable("0 9 * * *", fixed)
    assert tt.serialize()["timezone"] == "-03:30"
    assert deserialize_timetable(serialize_timetable(tt)) == tt
    with pytest.raises(ScheduleError, match="unknown time zone"):
        deserialize_timetable({"type": "cron", "expression": "@daily", "timezone": "Mars/Olympus"})
    with pytest.raises(ScheduleError, match="unknown serialized timetable"):
        deserialize_timetable({"type": "lunar"})
