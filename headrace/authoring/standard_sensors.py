"""The standard sensors, with Airflow's arguments: Python, Bash, File, Time, TimeDelta, DateTime, DayOfWeek.

Import them from ``headrace.sensors``. Each is a
:class:`~headrace.authoring.sensors.BaseSensorOperator`, so every one takes
``mode="reschedule"`` (no process while it waits), ``poke_interval``,
``timeout``, ``soft_fail`` and the rest. ``deferrable=True`` (the time, time delta,
date time and file sensors, as in Airflow) hands the wait to the triggerer: the
task instance is ``deferred`` with no process until the trigger fires.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from headrace.authoring.branching import WeekDay, _dag_tz
from headrace.authoring.context import call_with_context
from headrace.authoring.schedules import ensure_aware, utcnow
from headrace.authoring.secrets import Connection, ConnectionNotFound
from headrace.authoring.sensors import BaseSensorOperator, PokeReturnValue
from headrace.authoring.triggers import DateTimeTrigger, FileTrigger
from headrace.exceptions import DagDefinitionError, FailTask
from headrace.types import Context


def _defer_until(sensor: BaseSensorOperator, moment: datetime) -> None:
    """Return at once if ``moment`` has passed, else defer to a :class:`DateTimeTrigger` of it."""
    if utcnow() >= moment:
        print(f"The time ({moment.isoformat()}) has come", flush=True)
        return
    sensor.defer(
        trigger=DateTimeTrigger(moment),
        method_name="execute_complete",
        timeout=timedelta(seconds=sensor.timeout),
    )


class PythonSensor(BaseSensorOperator):
    """Pokes ``python_callable(*op_args, **op_kwargs)`` (plus the context keys it names) until it returns a true
    value or a done :class:`PokeReturnValue` (whose ``xcom_value`` becomes the sensor's XCom).

    ``op_args``, ``op_kwargs`` and ``templates_dict`` are template fields. Raises ``DagDefinitionError`` if
    ``python_callable`` is not callable.
    """

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        templates_dict: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"task {self.task_id!r}: python_callable must be callable")
        self.python_callable = python_callable
        self.op_args: list[Any] = list(op_args or [])
        self.op_kwargs: dict[str, Any] = dict(op_kwargs or {})
        self.templates_dict = templates_dict

    def poke(self, context: Context) -> PokeReturnValue:
        """Call the callable; its result as a ``PokeReturnValue``."""
        context["templates_dict"] = self.templates_dict
        print(f"Poking callable: {getattr(self.python_callable, '__name__', self.python_callable)!s}", flush=True)
        result = self.execute_callable(context)
        return result if isinstance(result, PokeReturnValue) else PokeReturnValue(bool(result))

    def execute_callable(self, context: Context) -> Any:
        """Call ``python_callable`` with ``op_args``, ``op_kwargs`` and the context keys it names."""
        return call_with_context(self.python_callable, self.op_args, self.op_kwargs, context)


class BashSensor(BaseSensorOperator):
    """Pokes by running ``bash_command`` (in a temporary directory, output to the log): exit code 0 is done.

    Without ``retry_exit_code`` any other exit code means "not yet"; with it, that code means "not yet" and
    any other non-zero code fails the sensor without retries (``FailTask``), as in Airflow. ``env`` replaces
    the environment (None: the task's). ``bash_command`` and ``env`` are template fields.
    """

    template_fields: Sequence[str] = ("bash_command", "env")
    template_ext: Sequence[str] = (".sh", ".bash")

    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        output_encoding: str = "utf-8",
        retry_exit_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    def poke(self, context: Context) -> bool:
        """Run the command once; True on exit code 0 (see the class docstring for the others)."""
        with tempfile.TemporaryDirectory(prefix="headracetmp") as tmp:
            print(f"Running command: {self.bash_command}", flush=True)
            proc = subprocess.run(
                ["bash", "-c", self.bash_command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=self.env,
                check=False,
            )
        output = proc.stdout.decode(self.output_encoding, errors="backslashreplace")
        if output:
            sys.stdout.write(output if output.endswith("\n") else output + "\n")
            sys.stdout.flush()
        code = proc.returncode
        print(f"Command exited with return code {code}", flush=True)
        if code == 0:
            return True
        if self.retry_exit_code is not None and code != self.retry_exit_code:
            raise FailTask(f"Command exited with return code {code}")
        return False


class FileSensor(BaseSensorOperator):
    """Pokes until a file (or a directory holding a file) matches ``filepath``, a glob pattern.

    ``filepath`` is joined to the ``path`` extra of connection ``fs_conn_id`` (Airflow's ``fs`` connection;
    ``fs_default`` may be absent, then paths are taken as they are). ``recursive=True`` lets ``**`` match any
    number of directories. ``filepath`` is a template field.
    """

    template_fields: Sequence[str] = ("filepath",)
    ui_color = "#91818a"

    def __init__(
        self,
        *,
        filepath: str,
        fs_conn_id: str = "fs_default",
        recursive: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.filepath = filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive

    def base_path(self) -> str:
        """The ``path`` extra of ``fs_conn_id`` ("" when ``fs_default`` does not exist).

        Raises ``ConnectionNotFound`` for another missing connection.
        """
        try:
            conn = Connection.get(self.fs_conn_id)
        except ConnectionNotFound:
            if self.fs_conn_id == "fs_default":
                return ""
            raise
        return str(conn.extra_dejson.get("path", ""))

    def execute(self, context: Context) -> Any:
        """Poke (see ``BaseSensorOperator``); with ``deferrable=True``, one poke, then a :class:`FileTrigger`
        on the same pattern (checking every ``poke_interval``) for at most ``timeout``."""
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=FileTrigger(
                filepath=os.path.join(self.base_path(), self.filepath),
                recursive=self.recursive,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Any = None) -> None:
        """Resumed by the trigger: the file is there (a false event fails the task, as in Airflow)."""
        if not event:
            raise FailTask(f"{self.task_id} failed: {self.filepath} was not found")
        print(f"Found file {self.filepath}", flush=True)

    def poke(self, context: Context) -> bool:
        """True when a file matches, or a matching directory holds a file (at any depth)."""
        full_path = os.path.join(self.base_path(), self.filepath)
        print(f"Poking for file {full_path}", flush=True)
        for path in glob.glob(full_path, recursive=self.recursive):
            if os.path.isfile(path):
                modified = datetime.fromtimestamp(os.path.getmtime(path), UTC)
                print(f"Found file {path} last modified: {modified.isoformat()}", flush=True)
                return True
            for _, _, files in os.walk(path):
                if files:
                    return True
        return False


class TimeSensor(BaseSensorOperator):
    """Pokes until the time of day in the DAG's time zone is past ``target_time`` (a ``datetime.time``).

    The day is the one the poke runs on (not the day the DAG file was parsed). Raises
    ``DagDefinitionError`` for a ``target_time`` that is not a ``datetime.time``.
    """

    def __init__(self, *, target_time: time, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        if not isinstance(target_time, time):
            raise DagDefinitionError(f"task {self.task_id!r}: target_time must be a datetime.time, got {target_time!r}")
        self.target_time = target_time

    def target_datetime(self) -> datetime:
        """Today's ``target_time`` in the DAG's time zone (UTC-aware)."""
        zone = _dag_tz(self)
        today = utcnow().astimezone(zone).date()
        return ensure_aware(datetime.combine(today, self.target_time.replace(tzinfo=None)), zone).astimezone(UTC)

    def execute(self, context: Context) -> Any:
        """Poke; with ``deferrable=True`` defer to a :class:`DateTimeTrigger` of today's ``target_time``."""
        if not self.deferrable:
            return super().execute(context)
        _defer_until(self, self.target_datetime())
        return None

    def poke(self, context: Context) -> bool:
        """True once now is past today's ``target_time``."""
        target = self.target_datetime()
        print(f"Checking if the time ({target.isoformat()}) has come", flush=True)
        return utcnow() > target


class TimeDeltaSensor(BaseSensorOperator):
    """Pokes until ``delta`` (timedelta or seconds) after the run's data interval end (its logical date when it
    has none) has passed. Raises ``DagDefinitionError`` for a bad ``delta``."""

    def __init__(self, *, delta: timedelta | float, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        if isinstance(delta, (int, float)) and not isinstance(delta, bool):
            delta = timedelta(seconds=delta)
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(f"task {self.task_id!r}: delta must be a timedelta or seconds, got {delta!r}")
        self.delta = delta

    def target_datetime(self, context: Context) -> datetime:
        """The run's data interval end (or logical date) plus ``delta``."""
        base = context.get("data_interval_end") or context.get("logical_date") or utcnow()
        return ensure_aware(base) + self.delta

    def execute(self, context: Context) -> Any:
        """Poke; with ``deferrable=True`` defer to a :class:`DateTimeTrigger` of the target."""
        if not self.deferrable:
            return super().execute(context)
        _defer_until(self, self.target_datetime(context))
        return None

    def poke(self, context: Context) -> bool:
        """True once now is past the target."""
        target = self.target_datetime(context)
        print(f"Checking if the time ({target.isoformat()}) has come", flush=True)
        return utcnow() > target


class DateTimeSensor(BaseSensorOperator):
    """Pokes until now is past ``target_time``: a datetime, or a string (a template field, e.g.
    ``"{{ data_interval_end + macros.timedelta(hours=1) }}"``) parsed as ISO 8601, UTC when naive.

    Raises ``DagDefinitionError`` for another type, and ``ValueError`` at poke time for a string that is
    not a date.
    """

    template_fields: Sequence[str] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        if isinstance(target_time, datetime):
            self.target_time = ensure_aware(target_time).isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise DagDefinitionError(
                f"task {self.task_id!r}: target_time must be a str or datetime, got {type(target_time).__name__}"
            )

    def execute(self, context: Context) -> Any:
        """Poke; with ``deferrable=True`` defer to a :class:`DateTimeTrigger` of ``target_time`` (rendered)."""
        if not self.deferrable:
            return super().execute(context)
        _defer_until(self, ensure_aware(datetime.fromisoformat(str(self.target_time).strip())))
        return None

    def poke(self, context: Context) -> bool:
        """True once now is past ``target_time``."""
        target = ensure_aware(datetime.fromisoformat(str(self.target_time).strip()))
        print(f"Checking if the time ({target.isoformat()}) has come", flush=True)
        return utcnow() > target


class DayOfWeekSensor(BaseSensorOperator):
    """Pokes until today (in the DAG's time zone) is one of ``week_day``: a day's full name (any case), a
    ``WeekDay``, or a collection of them. ``use_task_logical_date=True`` looks at the run's logical date
    instead. Raises ``DagDefinitionError`` naming the task for a bad ``week_day``."""

    def __init__(
        self,
        *,
        week_day: str | WeekDay | Iterable[str | WeekDay],
        use_task_logical_date: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        try:
            self._week_day_num = WeekDay.validate_week_day(week_day)
        except (AttributeError, TypeError) as exc:
            raise DagDefinitionError(f"task {self.task_id!r}: week_day: {exc}") from None

    def poke(self, context: Context) -> bool:
        """True when the day is one of ``week_day``."""
        day = context["logical_date"] if self.use_task_logical_date else utcnow().astimezone(_dag_tz(self))
        print(f"Poking until weekday is in {sorted(self._week_day_num)}, today is {day.strftime('%A')}", flush=True)
        return day.isoweekday() in self._week_day_num


__all__ = [
    "BashSensor",
    "DateTimeSensor",
    "DayOfWeekSensor",
    "FileSensor",
    "PythonSensor",
    "TimeDeltaSensor",
    "TimeSensor",
]
