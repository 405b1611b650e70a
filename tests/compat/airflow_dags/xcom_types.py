"""Airflow 3 style: XCom values beyond JSON, pushed by one task and pulled by another."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import numpy as np
import pandas as pd
from airflow.sdk import dag, task
from pydantic import BaseModel


@dataclasses.dataclass
class Batch:
    name: str
    rows: int


class Order(BaseModel):
    id: int
    amount: Decimal


def values() -> dict[str, object]:
    return {
        "batch": Batch("daily", 3),
        "order": Order(id=1, amount=Decimal("9.90")),
        "frame": pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [1.5, float("nan")]}),
        "count": np.int64(3),
        "matrix": np.eye(2),
        "when": datetime(2024, 1, 1, 12, tzinfo=timezone.utc),
        "day": date(2024, 1, 1),
        "wait": timedelta(minutes=5),
        "price": Decimal("19.99"),
        "id": UUID(int=7),
        "path": Path("/data/in.csv"),
        "tags": {"x", "y"},
        "pair": (1, "a"),
    }


@dag(dag_id="compat_xcom_types", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, tags=["compat"])
def compat_xcom_types():
    @task
    def produce() -> dict[str, object]:
        return values()

    @task
    def consume(got: dict[str, object]) -> None:
        want = values()
        pd.testing.assert_frame_equal(got.pop("frame"), want.pop("frame"))
        assert (got.pop("matrix") == want.pop("matrix")).all()
        for key, value in want.items():
            assert got[key] == value and type(got[key]) is type(value), key

    consume(produce())


compat_xcom_types()
