"""``macros`` in a template's context: date helpers and the modules Airflow's ``macros`` exposes.

In a template: ``{{ macros.ds_add(ds, 7) }}``, ``{{ macros.datetime(2024, 1, 1) }}``,
``{{ macros.timedelta(days=1) }}``, ``{{ macros.dateutil.relativedelta.relativedelta(months=1) }}``,
``{{ macros.uuid.uuid4() }}``, ``{{ macros.json.dumps(params) }}``, ``{{ macros.random() }}``,
``{{ macros.time.time() }}``, ``{{ macros.yaml.safe_dump(...) }}`` (PyYAML, loaded on first use) — the
names of Airflow 3's ``airflow.sdk.execution_time.macros`` (``airflow.macros``), with the same meaning.
A DAG's ``user_defined_macros`` are added to the context beside ``macros``, not inside it (as in Airflow).

``ds_format_locale`` needs Babel, as in Airflow (``pip install 'headrace[babel]'``); without it the macro
raises ``ImportError`` saying so. Left out: Airflow 2's ``macros.hive`` (a provider's); asking for it raises
``AttributeError`` naming it.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from random import random
from types import ModuleType
from typing import Any

import dateutil
import dateutil.relativedelta

_NOT_PROVIDED = {
    "hive": "macros.hive belongs to Airflow's Hive provider, which headrace does not provide",
}


def ds_add(ds: str, days: int) -> str:
    """``ds`` (``YYYY-MM-DD``) moved by ``days`` days (negative: back), as ``YYYY-MM-DD``.

    ``ds_add("2015-01-01", 5)`` is ``"2015-01-06"``. Raises ``ValueError`` if ``ds`` is not ``YYYY-MM-DD``.
    """
    if not days:
        return str(ds)
    return (datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """``ds`` read with strptime's ``input_format`` and written with strftime's ``output_format``.

    ``ds_format("1/5/2015", "%m/%d/%Y", "%Y-%m-%d")`` is ``"2015-01-05"``. Raises ``ValueError`` if ``ds``
    does not match ``input_format``.
    """
    return datetime.strptime(str(ds), input_format).strftime(output_format)


def ds_format_locale(ds: str, input_format: str, output_format: str, locale: Any = None) -> str:
    """``ds`` read with strptime's ``input_format`` and written in Babel's date pattern ``output_format``
    (e.g. ``"EEEE d MMMM y"``, not strftime) in ``locale`` (a name such as ``"nl_BE"`` or a
    ``babel.Locale``; None: the process's ``LC_TIME`` locale, as Airflow).

    ``ds_format_locale("1/5/2015", "%m/%d/%Y", "EEEE dd MMMM Y", "en_US")`` is
    ``"Monday 05 January 2015"``. Raises ``ValueError`` if ``ds`` does not match ``input_format``,
    ``babel.UnknownLocaleError`` for an unknown locale, and ``ImportError`` when Babel is not installed.
    """
    try:
        from babel import dates as babel_dates
    except ImportError:
        raise ImportError(
            "macros.ds_format_locale needs Babel: pip install 'headrace[babel]' (or babel) where tasks run"
        ) from None
    when = datetime.strptime(str(ds), input_format)
    return str(babel_dates.format_datetime(when, format=output_format, locale=locale or babel_dates.LC_TIME))


_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("week", 7 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
    ("second", 1),
)


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    """How far ``dt`` is from ``since`` in words, as pendulum's ``diff_for_humans`` (which Airflow's macro uses).

    Without ``since`` (now): ``"2 days ago"`` / ``"in 3 hours"``; with it: ``"2 days before"`` /
    ``"3 hours after"``. One unit, the largest that fits (year = 365 days, month = 30 days); under a second
    is ``"a few seconds"``. Naive datetimes are taken as UTC.
    """
    dt = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    other = since or datetime.now(UTC)
    other = other if other.tzinfo is not None else other.replace(tzinfo=UTC)
    seconds = (dt - other).total_seconds()
    size = abs(seconds)
    phrase = "a few seconds"
    for unit, length in _UNITS:
        if size >= length:
            count = int(size // length)
            phrase = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    if since is None:
        return f"in {phrase}" if seconds > 0 else f"{phrase} ago"
    return f"{phrase} after" if seconds > 0 else f"{phrase} before"


def __getattr__(name: str) -> ModuleType:
    if name == "yaml":  # PyYAML, imported on first use as in Airflow (it is slow to import)
        return importlib.import_module("yaml")
    if name in _NOT_PROVIDED:
        raise AttributeError(_NOT_PROVIDED[name])
    raise AttributeError(f"module 'macros' has no attribute {name!r}")


__all__ = [
    "dateutil",
    "datetime",
    "datetime_diff_for_humans",
    "ds_add",
    "ds_format",
    "ds_format_locale",
    "json",
    "random",
    "time",
    "timedelta",
    "uuid",
]

_: Any = (json, time, uuid, random, dateutil.relativedelta)  # re-exported for templates
