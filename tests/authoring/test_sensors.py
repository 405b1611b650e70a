"""BaseSensorOperator's arguments and its poke loop, run in this process (the scheduler tests are in
tests/integration/test_sensors.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headrace import DAG
from headrace.authoring.sensors import DEFAULT_TIMEOUT
from headrace.exceptions import DagDefinitionError, FailTask, RescheduleTask, SensorTimeout, SkipTask
from headrace.sensors import BaseSensorOperator, DateTimeSensor, FileSensor, PokeReturnValue, poke_mode_only


class Scripted(BaseSensorOperator):
    """Pokes return (or raise) the scripted values in order."""

    def __init__(self, *, script: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = list(script)
        self.pokes = 0

    def poke(self, context: Any) -> bool | PokeReturnValue:
        self.pokes += 1
        value = self.script.pop(0)
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[no-any-return]


class FirstPoke:
    """``context["ti"]`` with the reschedule history the supervisor would give."""

    def __init__(self, first: datetime | None) -> None:
        self.first = first

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        return self.first


def sensor(**kwargs: Any) -> Scripted:
    with DAG("d"):
        return Scripted(task_id="s", **{"poke_interval": 0, **kwargs})


def test_defaults_are_airflows() -> None:
    s = sensor(script=[])
    assert (s.poke_interval, s.timeout, s.mode, s.max_wait) == (0, DEFAULT_TIMEOUT, "poke", None)
    assert DEFAULT_TIMEOUT == 7 * 24 * 3600
    with DAG("d2"):
        default = Scripted(task_id="s", script=[])
    assert default.poke_interval == 60 and not default.soft_fail and not default.exponential_backoff


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "smart"}, "mode must be one of ['poke', 'reschedule']"),
        ({"poke_interval": -1}, "poke_interval must not be negative"),
        ({"timeout": "1h"}, "timeout must be a timedelta or a number of seconds"),
        ({"max_wait": -2}, "max_wait must not be negative"),
        ({"soft_fail": True, "never_fail": True}, "soft_fail and never_fail are mutually exclusive"),
    ],
)
def test_bad_arguments_are_refused_naming_the_task(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DagDefinitionError, match="task 's'") as caught:
        sensor(script=[], **kwargs)
    assert message in str(caught.value)


def test_timedeltas_are_seconds() -> None:
    s = sensor(script=[], timeout=timedelta(minutes=2), max_wait=timedelta(seconds=30))
    assert (s.timeout, s.max_wait) == (120, 30)


def test_poke_mode_pokes_until_done_and_returns_the_xcom_value() -> None:
    s = sensor(script=[False, PokeReturnValue(False), PokeReturnValue(True, {"n": 1})])
    assert s.execute({"ti": FirstPoke(None)}) == {"n": 1}
    assert s.pokes == 3


def test_reschedule_mode_pokes_once_and_asks_for_the_next_poke() -> None:
    s = sensor(script=[False], mode="reschedule", poke_interval=30)
    before = datetime.now(UTC)
    with pytest.raises(RescheduleTask) as caught:
        s.execute({"ti": FirstPoke(None)})
    assert s.pokes == 1
    assert before + timedelta(seconds=30) <= caught.value.reschedule_date <= datetime.now(UTC) + timedelta(seconds=30)


def test_reschedule_timeout_counts_from_the_first_poke() -> None:
    first = datetime.now(UTC) - timedelta(seconds=100)
    with pytest.raises(SensorTimeout, match="exceeds the specified timeout of 60"):
        sensor(script=[False], mode="reschedule", timeout=60).execute({"ti": FirstPoke(first)})
    with pytest.raises(SkipTask, match="timed out"):
        sensor(script=[False], mode="reschedule", timeout=60, soft_fail=True).execute({"ti": FirstPoke(first)})
    with pytest.raises(RescheduleTask):  # within the timeout
        sensor(script=[False], mode="reschedule", timeout=200).execute({"ti": FirstPoke(first)})


def test_poke_mode_timeout() -> None:
    with pytest.raises(SensorTimeout):
        sensor(script=[False] * 1000, timeout=0.05, poke_interval=0.01).execute({"ti": FirstPoke(None)})


def test_soft_fail_never_fail_silent_fail() -> None:
    ctx = {"ti": FirstPoke(None)}
    with pytest.raises(SkipTask, match="soft_fail"):
        sensor(script=[FailTask("no")], soft_fail=True).execute(ctx)
    with pytest.raises(RuntimeError):  # soft_fail does not hide an ordinary error
        sensor(script=[RuntimeError("boom")], soft_fail=True).execute(ctx)
    with pytest.raises(SkipTask, match="never_fail"):
        sensor(script=[RuntimeError("boom")], never_fail=True).execute(ctx)
    silent = sensor(script=[RuntimeError("boom"), True], silent_fail=True)
    assert silent.execute(ctx) is None and silent.pokes == 2  # the error counted as an unmet poke
    with pytest.raises(FailTask):
        sensor(script=[FailTask("no")], silent_fail=True).execute(ctx)


def test_exponential_backoff_grows_with_jitter_and_is_capped() -> None:
    s = sensor(script=[], poke_interval=10, exponential_backoff=True)
    started = 123.0
    intervals = [s.next_poke_interval(started, lambda: 0.0, n) for n in range(1, 7)]
    for n, interval in enumerate(intervals, start=1):
        floor = max(int(10 * 2 ** (n - 2)), 1)
        assert floor <= interval < 2 * floor
    assert intervals == [s.next_poke_interval(started, lambda: 0.0, n) for n in range(1, 7)]  # deterministic
    capped = sensor(script=[], poke_interval=10, exponential_backoff=True, max_wait=25)
    assert max(capped.next_poke_interval(started, lambda: 0.0, n) for n in range(1, 7)) <= 25
    near_timeout = sensor(script=[], poke_interval=10, exponential_backoff=True, timeout=100)
    assert near_timeout.next_poke_interval(started, lambda: 95.0, 6) <= 5
    plain = sensor(script=[], poke_interval=10)
    assert plain.next_poke_interval(started, lambda: 50.0, 6) == 10


def test_exponential_backoff_in_reschedule_mode_estimates_the_poke_count_from_the_time_waited() -> None:
    s = sensor(script=[], poke_interval=10, exponential_backoff=True, mode="reschedule")
    started = datetime(2026, 1, 1, tzinfo=UTC)
    early = s.next_poke_interval(started, lambda: 0.0, 1)
    late = s.next_poke_interval(started, lambda: 1000.0, 1)
    assert early < 10 <= 40 <= late


def test_poke_mode_only_refuses_reschedule() -> None:
    @poke_mode_only
    class OnlyPoke(Scripted):
        pass

    with DAG("d"):
        OnlyPoke(task_id="ok", script=[])
        with pytest.raises(DagDefinitionError, match="mode must be one of \\['poke'\\]"):
            OnlyPoke(task_id="no", script=[], mode="reschedule")


def test_a_deferrable_file_sensor_pokes_once_then_defers_to_a_file_trigger(tmp_path: Path) -> None:
    from headrace.exceptions import TaskDeferred
    from headrace.triggers import FileTrigger

    with DAG("d"):
        s = FileSensor(task_id="f", filepath=str(tmp_path / "*.csv"), deferrable=True, poke_interval=3, timeout=60)
    s.base_path = lambda: ""  # type: ignore[method-assign]  # no connection store outside a supervisor
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, FileTrigger)
    assert trigger.serialize() == (
        "headrace.triggers.FileTrigger",
        {"filepath": str(tmp_path / "*.csv"), "recursive": False, "poke_interval": 3.0},
    )
    assert (deferred.value.method_name, deferred.value.timeout) == ("execute_complete", timedelta(seconds=60))
    (tmp_path / "a.csv").write_text("x")
    assert s.execute({}) is None  # already there: no deferral


@pytest.mark.parametrize("soft_fail", [False, True])
def test_a_deferred_sensor_that_times_out_fails_without_retry_or_skips(soft_fail: bool) -> None:
    from headrace.exceptions import SensorTimeout

    with DAG("d"):
        s = DateTimeSensor(
            task_id="t", target_time=datetime(2999, 1, 1, tzinfo=UTC), deferrable=True, soft_fail=soft_fail
        )
    with pytest.raises(SkipTask if soft_fail else SensorTimeout):
        s.resume_execution("__fail__", {"error": "Trigger timeout"}, {})
    assert s.resume_execution("execute_complete", {"event": "x"}, {}) is None


def test_date_time_sensor_keeps_a_datetime_as_iso_text() -> None:
    with DAG("d"):
        s = DateTimeSensor(task_id="t", target_time=datetime(2020, 1, 1, tzinfo=UTC))
    assert s.target_time == "2020-01-01T00:00:00+00:00"
    assert s.poke({}) is True
