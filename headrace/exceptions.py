"""The exceptions headrace raises, and the ones tasks raise to steer their own try.

Three sections:

* ``HeadraceError`` and its families: errors about the system and its input
  (configuration, DAG files, state, executors, the database). Each carries
  data fields and an ``http_status`` the REST API answers with.
* Task control flow (``SkipTask``, ``FailTask``, ``RetryTask``): raised by task
  code to end its try in a given way.
* Interrupts (``TaskTimeout``, ``TaskTerminated``, ``MemoryLimitExceeded``):
  delivered into a running task. They derive from ``BaseException`` so that a
  task's own ``except Exception:`` cannot swallow them and carry on running.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class HeadraceError(Exception):
    """Raised when headrace cannot do what was asked; root of all headrace errors."""

    http_status: int = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        return self.message


# --- configuration -----------------------------------------------------------


class ConfigError(HeadraceError):
    """Raised when a setting is unknown, of the wrong type or out of range."""

    http_status = 400

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message, key=key, source=source)
        self.key = key
        self.source = source


# --- DAG definitions ---------------------------------------------------------


class DagDefinitionError(HeadraceError):
    """Raised when a DAG or task is defined wrongly (bad argument, cycle, bad schedule)."""

    http_status = 400

    def __init__(self, message: str, *, fileloc: str | None = None, lineno: int | None = None) -> None:
        super().__init__(message, fileloc=fileloc, lineno=lineno)
        self.fileloc = fileloc
        self.lineno = lineno

    def __str__(self) -> str:
        if self.fileloc:
            where = f"{self.fileloc}:{self.lineno}" if self.lineno else self.fileloc
            return f"{where}: {self.message}"
        return self.message


class DagCycleError(DagDefinitionError):
    """Raised when a DAG's dependencies form a cycle; the message names the cycle."""


class ScheduleError(DagDefinitionError):
    """Raised when a schedule (cron string, preset, interval) cannot be understood."""


class DuplicateTaskIdError(DagDefinitionError):
    """Raised when two tasks in one DAG share a task_id."""


class DagImportError(HeadraceError):
    """Raised when a DAG file cannot be imported (syntax error, exception, timeout)."""

    http_status = 400

    def __init__(self, message: str, *, fileloc: str, lineno: int | None = None) -> None:
        super().__init__(message, fileloc=fileloc, lineno=lineno)
        self.fileloc = fileloc
        self.lineno = lineno


class NotFound(HeadraceError):
    """Raised when a DAG, DAG run, task or pool named by the user does not exist."""

    http_status = 404


class DagNotFound(NotFound):
    """Raised when no DAG has the given dag_id."""


class DagRunNotFound(NotFound):
    """Raised when no DAG run has the given run_id."""


class AssetNotFound(NotFound):
    """Raised when no asset has the given URI or name (an asset exists once a DAG names it)."""


class TaskNotFound(NotFound):
    """Raised when a DAG has no task with the given task_id."""


class DagRunAlreadyExists(HeadraceError):
    """Raised when a DAG run with the same run_id (or logical date) already exists."""

    http_status = 409


# --- state -------------------------------------------------------------------


class InvalidTransition(HeadraceError):
    """Raised when code asks for a state change the transition table forbids.

    This is a programming error, not a lost race: a lost compare-and-set returns
    False instead.
    """

    http_status = 409

    def __init__(self, expected: str, new: str, *, what: str = "task instance") -> None:
        super().__init__(f"{what} may not move from {expected!r} to {new!r}", expected=expected, new=new)
        self.expected = expected
        self.new = new


# --- XCom --------------------------------------------------------------------


class XComError(HeadraceError):
    """Raised when an XCom value cannot be serialized, is too large or cannot be found."""

    http_status = 400


# --- executors and supervisor ------------------------------------------------


class RemoteLogError(HeadraceError):
    """Raised when a try's log is only in ``logging.remote_base_log_folder`` and that store cannot be read."""

    http_status = 502


class ExecutorError(HeadraceError):
    """Raised when an executor cannot accept or run a try."""

    http_status = 503


# --- database ----------------------------------------------------------------


class DatabaseError(HeadraceError):
    """Raised when the metadata database is unreachable or not migrated."""

    http_status = 503


# --- task control flow -------------------------------------------------------


class TaskControl(HeadraceError):
    """Base of the exceptions a task raises to end its try in a chosen way (the message is optional).

    A :class:`HeadraceError`, as Airflow's are ``AirflowException``s: ``except AirflowException``
    in DAG code catches them too.
    """

    http_status = 500

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)


class SkipTask(TaskControl):
    """Raise inside a task to end its try as ``skipped``."""


class FailTask(TaskControl):
    """Raise inside a task to fail it now, without using any retries left."""


class SensorTimeout(FailTask):
    """Raised when a sensor's ``timeout`` has passed: the task fails without using its retries (Airflow's rule)."""


class RescheduleTask(TaskControl):
    """Raised by a sensor in ``mode="reschedule"`` whose poke found its criteria unmet: the try's process ends,
    its slot is freed, and the same try pokes again in a new process at ``reschedule_date`` (UTC-aware)."""

    def __init__(self, reschedule_date: datetime) -> None:
        super().__init__(f"next poke at {reschedule_date.isoformat()}")
        self.reschedule_date = reschedule_date


class TaskDeferred(BaseException):  # noqa: N818 - Airflow's name
    """Raised by ``BaseOperator.defer``: the try's process ends and the task instance waits (``deferred``) for
    ``trigger``'s first event, then resumes in a new process, in the same try, with
    ``getattr(task, method_name)(context, event=payload, **kwargs)``.

    A ``BaseException`` (as Airflow's): a task's ``except Exception`` must not swallow the hand-over.
    ``timeout``: seconds (or a timedelta) the wait may last before the task fails with
    :class:`TaskDeferralTimeout`; None: no limit.
    """

    def __init__(
        self,
        *,
        trigger: Any,
        method_name: str,
        kwargs: dict[str, Any] | None = None,
        timeout: timedelta | float | None = None,
    ) -> None:
        super().__init__(f"deferred to {type(trigger).__name__}, resuming in {method_name}")
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs = kwargs
        if timeout is not None and not isinstance(timeout, timedelta):
            timeout = timedelta(seconds=float(timeout))
        self.timeout: timedelta | None = timeout


class TaskDeferralError(TaskControl):
    """Raised in a resumed task whose trigger failed (raised, or ended without an event); the message carries
    the trigger's error. The try fails as any error fails it (retries apply)."""


class TaskDeferralTimeout(TaskControl):
    """Raised in a resumed task whose deferral outlasted its ``timeout`` (the trigger never fired). A sensor
    turns it into :class:`SensorTimeout` (or a skip with ``soft_fail``)."""


class RetryTask(TaskControl):
    """Raise inside a task to fail this try and retry, optionally after ``delay`` seconds."""

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


# --- interrupts ----------------------------------------------------------------
# BaseException, not Exception: a task's ``except Exception`` must not catch them
# and keep running after the supervisor decided its try is over.


class TaskInterrupt(BaseException):
    """Base of the interrupts delivered into a running task by its supervisor."""


class TaskTimeout(TaskInterrupt):
    """Raised in a task when its ``execution_timeout`` has passed."""


class TaskTerminated(TaskInterrupt):
    """Raised in a task when it was asked to stop (SIGTERM)."""


class MemoryLimitExceeded(TaskInterrupt):
    """Raised in a task when its process tree went over ``memory_limit``."""


# --- appended by the scheduler ---------------------------------------------------


class DagRunConfError(HeadraceError):
    """Raised when the ``conf`` given to a DAG run is not a JSON object (a dict of JSON values)."""

    http_status = 400


class ParamValidationError(DagRunConfError):
    """Raised when a DAG param's value (its default, or a trigger's conf) fails the param's JSON schema, or a
    param without default gets no value; no run is created (Airflow's name)."""

    http_status = 400

    def __init__(self, message: str, *, param: str | None, reason: str | None = None) -> None:
        super().__init__(message, param=param, reason=reason)
        self.param = param
        """The param's name (None when not known)."""
        self.reason = reason or message
        """Why the value was refused, without the param's name."""


class DagRunConfTooLarge(DagRunConfError):
    """Raised when a DAG run's ``conf``, as compact UTF-8 JSON, is longer than ``api.max_conf_bytes``."""

    http_status = 413

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message, size=size, limit=limit)
        self.size = size
        """Bytes of the refused conf."""
        self.limit = limit
        """``api.max_conf_bytes``."""


# --- API, users and secrets ------------------------------------------------------


class InvalidRequest(HeadraceError):
    """Raised when a request to the API or CLI is malformed or names values that cannot be used together."""

    http_status = 400


class RequestBodyTooLarge(InvalidRequest):
    """Raised when a request body is longer than ``api.max_request_bytes`` (it is not read further)."""

    http_status = 413

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, limit=limit)
        self.limit = limit
        """``api.max_request_bytes``."""


class Conflict(HeadraceError):
    """Raised when a request conflicts with the current state (a name already taken, a try still running)."""

    http_status = 409


class AuthenticationError(HeadraceError):
    """Raised when a request carries no valid login, session or API token."""

    http_status = 401


class LoginThrottled(HeadraceError):
    """Raised when a username or client address failed to log in too often lately (429, ``Retry-After``)."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
        """Whole seconds until the next attempt is considered."""


class PermissionDenied(HeadraceError):
    """Raised when the logged-in user's role does not allow the action (e.g. a viewer triggering a run)."""

    http_status = 403

    def __init__(self, message: str, *, role: str | None = None, needed: str | None = None) -> None:
        super().__init__(message, role=role, needed=needed)
        self.role = role
        self.needed = needed


class SecretsError(HeadraceError):
    """Raised when a secret cannot be encrypted or decrypted (missing or wrong ``secrets.fernet_key``)."""

    http_status = 500


# --- Airflow's names ---------------------------------------------------------------
# DAG code written for Airflow raises these; they are headrace's own classes, so they behave the same
# (``raise AirflowSkipException`` skips, ``AirflowFailException`` fails without retrying, any other
# ``AirflowException`` fails the try and uses the retries left).

AirflowException = HeadraceError
"""Airflow's base exception: raised in a task it fails the try like any other error (retries apply)."""
AirflowSkipException = SkipTask
"""Airflow's name for :class:`SkipTask`."""
AirflowFailException = FailTask
"""Airflow's name for :class:`FailTask`."""
AirflowTaskTimeout = TaskTimeout
"""Airflow's name for :class:`TaskTimeout` (a ``BaseException`` in both)."""
AirflowSensorTimeout = SensorTimeout
"""Airflow's name for :class:`SensorTimeout`."""
AirflowRescheduleException = RescheduleTask
"""Airflow's name for :class:`RescheduleTask`."""
