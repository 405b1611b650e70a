from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.authoring.dag import DAG
from headrace.authoring.operators import EmptyOperator
from headrace.authoring.xcom import XComArg, deserialize_xcom, find_xcom_args, serialize_xcom, xcoms_for_result
from headrace.exceptions import XComError


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        2.5,
        "text",
        True,
        [1, "a"],
        {"a": {"b": [1]}},
        datetime(2024, 1, 1, 12, tzinfo=UTC),
        date(2024, 1, 1),
        timedelta(seconds=90.5),
        b"\x00bytes\xff",
        (1, (2, 3)),
        {1, 2, 3},
        {1: "int key", (1, 2): "tuple key"},
        {"__hr__": "looks like a tag"},
    ],
)
def test_round_trip(value: Any) -> None:
    assert deserialize_xcom(serialize_xcom(value, 10_000)) == value


def test_types_come_back_as_they_went() -> None:
    back = deserialize_xcom(serialize_xcom({"t": (1, 2), "s": {1}, "b": b"x"}, 1000))
    assert type(back["t"]) is tuple and type(back["s"]) is set and type(back["b"]) is bytes


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4) | st.tuples(inner, inner)
    ),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_property(value: Any) -> None:
    assert deserialize_xcom(serialize_xcom(value, 1_000_000)) == value


def test_not_serializable_message() -> None:
    with pytest.raises(
        XComError, match=r"XCom value of task extract \(key return_value\) is not JSON serializable: object"
    ):
        serialize_xcom(object(), 100, task_id="extract")
    with pytest.raises(XComError, match="not JSON serializable"):
        serialize_xcom(float("nan"), 100, task_id="t")


def test_too_large_message() -> None:
    value = "x" * 70000
    with pytest.raises(XComError) as info:
        serialize_xcom(value, 49152, task_id="big", key="rows")
    assert str(info.value) == (
        "XCom value of task big (key rows) is 70002 bytes, over the limit of 49152 bytes (xcom max size)"
    )
    assert info.value.fields["size"] == 70002


def test_invalid_stored_text() -> None:
    with pytest.raises(XComError):
        deserialize_xcom("{not json")
    with pytest.raises(XComError, match="unknown XCom type tag"):
        deserialize_xcom('{"__hr__": "martian", "v": 1}')


def test_xcomarg_keys_equality_and_not_iterable() -> None:
    with DAG("d"):
        op = EmptyOperator(task_id="op")
    ref = XComArg(op)
    assert ref.key == "return_value" and ref["rows"].key == "rows"
    assert ref == XComArg(op) and ref != ref["rows"] and len({ref, XComArg(op)}) == 1
    with pytest.raises(TypeError):
        list(ref)
    assert find_xcom_args({"a": [ref, (ref["k"],)], "b": 1}) == [ref, ref["k"]]


def test_xcomarg_shift_and_rshift_lists() -> None:
    with DAG("d"):
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        [XComArg(a), b] >> c
        c << XComArg(b)
        XComArg(a) << EmptyOperator(task_id="z")
    assert c.upstream_task_ids == {"a", "b"} and a.upstream_task_ids == {"z"}


def test_xcoms_for_result() -> None:
    plain = EmptyOperator(task_id="p")
    multi = EmptyOperator(task_id="m", multiple_outputs=True)
    assert xcoms_for_result(plain, None) == []
    assert xcoms_for_result(plain, 3) == [("return_value", 3)]
    assert xcoms_for_result(multi, {"a": 1}) == [("return_value", {"a": 1}), ("a", 1)]
    with pytest.raises(XComError, match="multiple_outputs=True"):
        xcoms_for_result(multi, [1])


def test_allowed_classes_globs_and_regexps_as_airflow_matches_them() -> None:
    from headrace.authoring.xcom_serde import AllowedClasses

    default = AllowedClasses()
    assert default.allows("headrace.authoring.params.Param")
    assert not default.allows("headrace_dag_0123abcd.Point")  # a DAG file's class: refused by default
    configured = AllowedClasses.from_config("headrace.*  models.*\n", r"headrace_dag_\w+\.Order$")
    assert configured.globs == ("headrace.*", "models.*")
    assert configured.allows("models.sales.Order") and configured.allows("headrace_dag_ab12.Order")
    assert not configured.allows("headrace_dag_ab12.Point") and not configured.allows("xmodels.Order")
    with pytest.raises(ValueError, match=r"core.allowed_deserialization_classes_regexp: bad pattern '\('"):
        AllowedClasses.from_config("", "(")


def test_decode_refuses_a_class_outside_the_allow_list_and_names_the_setting() -> None:
    from headrace.authoring.xcom_serde import AllowedClasses, allowed_classes, decode, encode, set_allowed_classes

    value = encode(_Pair(1, "a"))
    before = allowed_classes()
    try:
        set_allowed_classes(AllowedClasses(("headrace.*",)))
        with pytest.raises(XComError, match=rf"{__name__}._Pair was not found in allow list .*allowed_deserialization"):
            decode(value)
        assert decode(value, load_classes=False) == {"__class__": f"{__name__}._Pair", "n": 1, "s": "a"}  # UI/API
        set_allowed_classes(AllowedClasses(("headrace.*", f"{__name__}.*")))
        assert decode(value) == _Pair(1, "a")
    finally:
        set_allowed_classes(before)


@dataclasses.dataclass
class _Pair:
    n: int
    s: str
