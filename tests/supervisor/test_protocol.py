"""The supervisor ↔ task process protocol: framing, discrimination, failure semantics."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.supervisor.protocol import (
    Ack,
    DagRunStateValue,
    DagRunTriggered,
    Error,
    GetDagRunState,
    GetXCom,
    LineBuffer,
    ProtocolError,
    SetXCom,
    SkipTasks,
    SupervisorGone,
    TaskChannel,
    TaskDone,
    TriggerDagRun,
    XComValue,
    decode_request,
    decode_response,
    encode,
)


@pytest.mark.parametrize(
    "message",
    [
        GetXCom(task_ids=["a", "b"], key="k", dag_id="other"),
        GetXCom(),
        SetXCom(key="k", value_json='{"a":"line\\nbreak"}'),
        SkipTasks(task_ids=["x"]),
        TaskDone(outcome="retry", error="RetryTask: later", retry_delay=3.5),
        TaskDone(outcome="failed", error="ImportError: x", started=False),
        TriggerDagRun(dag_id="d", run_id="r", conf={"n": [1, "x\ny"]}, logical_date=datetime(2024, 1, 1, tzinfo=UTC)),
        TriggerDagRun(dag_id="d", reset_dag_run=True, fail_when_dag_is_paused=True),
        GetDagRunState(dag_id="d", run_id="r"),
    ],
)
def test_requests_round_trip_as_one_line(
    message: GetXCom | SetXCom | SkipTasks | TaskDone | TriggerDagRun | GetDagRunState,
) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_request(line[:-1]) == message


@pytest.mark.parametrize(
    "message",
    [
        DagRunTriggered(run_id="r", logical_date=datetime(2024, 1, 1, tzinfo=UTC), outcome="cleared"),
        DagRunTriggered(run_id="r", logical_date=None, outcome="exists"),
        DagRunStateValue(state="running"),
        DagRunStateValue(state=None),
    ],
)
def test_dag_run_answers_round_trip(message: DagRunTriggered | DagRunStateValue) -> None:
    assert decode_response(encode(message)[:-1]) == message


@given(st.text(), st.one_of(st.none(), st.text()))
def test_any_text_survives_framing(key: str, value: str | None) -> None:
    buffer = LineBuffer()
    data = encode(SetXCom(key=key, value_json=value or "")) + encode(XComValue(value_json=value))
    lines = [line for i in range(0, len(data), 7) for line in buffer.feed(data[i : i + 7])]
    assert decode_request(lines[0]) == SetXCom(key=key, value_json=value or "")
    assert decode_response(lines[1]) == XComValue(value_json=value)


def test_bad_messages_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        decode_request(b'{"type": "nope"}')
    with pytest.raises(ProtocolError):
        decode_request(b"not json")
    with pytest.raises(ProtocolError):
        decode_response(encode(GetXCom()))  # a request is not a response


def test_channel_request_response_and_supervisor_gone() -> None:
    mine, theirs = socket.socketpair()
    channel = TaskChannel(theirs)
    mine.sendall(encode(Ack()) + encode(Error(message="refused")))
    assert channel.request(SkipTasks(task_ids=[])) == Ack()
    assert channel.request(SetXCom(key="k", value_json="1")) == Error(message="refused")
    assert [decode_request(x) for x in mine.recv(4096).splitlines()] == [
        SkipTasks(task_ids=[]),
        SetXCom(key="k", value_json="1"),
    ]
    mine.close()
    with pytest.raises(SupervisorGone):
        channel.request(GetXCom())
