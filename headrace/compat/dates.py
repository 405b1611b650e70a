"""``airflow.utils.dates.days_ago`` for DAG files loaded with ``core.airflow_imports``.

Airflow 3 removed it (a start date that moves every day is a trap); ``headrace
migrate airflow`` rewrites each call to the datetime it computes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    """Today at ``hour:minute:second.microsecond`` UTC, minus ``n`` days (a timezone-aware datetime)."""
    today = datetime.now(UTC).replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - timedelta(days=n)
