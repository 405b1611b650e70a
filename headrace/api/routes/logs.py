"""``…/taskInstances/{task_id}/logs/{try_number}``: a try's log, by byte offset or followed as a stream.

Secrets are masked in what is returned: the values of variables whose key is
sensitive (``crypto.is_sensitive_key``), connection passwords and the
sensitive fields of connection extras, each replaced by ``***``, with the
same :class:`~headrace.masking.SecretMasker` the task process uses
(so also their JSON/repr/URL-quoted forms; values shorter than its
``MIN_SECRET_LENGTH`` are not masked). They are loaded once per request.

While the try runs, only whole lines are returned (a secret is never cut in
two across chunks); once it has ended, everything to the end of the file.
An ``offset`` at or past the end of the log is an empty chunk
(``content`` empty, ``next_offset`` = ``offset``), not an error: while the try
runs the log may still reach it, and ``finished`` says when it no longer can.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from headrace.api import schemas
from headrace.api.auth import get_db, get_encryptor, require
from headrace.api.routes.task_instances import MapIndex, get_ti
from headrace.api.routes.tries import TryNumber
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance, TaskTry
from headrace.exceptions import NotFound
from headrace.logs.files import try_log_path
from headrace.masking import SecretMasker
from headrace.secrets_store import stored_secrets_masker
from headrace.states import TI_ACTIVE

router = APIRouter(tags=["TaskInstance"], dependencies=[Depends(schemas.reject_nul_bytes), Depends(require("viewer"))])

TI_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id:path}/taskInstances/{task_id}"
"""``dag_run_id`` may hold ``/`` (sent as ``%2F``, which the server decodes before routing): the ``path``
convertor lets it match; the fixed ``/taskInstances/{task_id}/logs/{try_number}`` tail ends it."""
MAX_CHUNK_BYTES = 1024 * 1024
"""At most this many bytes per JSON answer; ask again from ``next_offset``."""
POLL_SECONDS = 0.5
"""How often a followed log is read again."""
MAX_FOLLOW_SECONDS = 3600.0
"""A stream ends after this long even if the try is still running (ask again to go on)."""


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class TryLog:
    """Where a try's log is and whether the try has ended."""

    path: FilePath
    finished: bool


def locate(session: Session, settings: Settings, ti: TaskInstance, try_number: int) -> TryLog:
    """The log of try ``try_number`` of ``ti``; raises ``NotFound`` for a try that was never queued.

    The path is the try's recorded ``log_path`` when that lies under ``logging.base_log_folder``, else the
    path the supervisor writes to there (never a file outside that folder).

    A try queued but not started yet has no ``task_try`` row: its log is where
    the supervisor will write it, and it is not finished while the task instance is queued/running.
    """
    if try_number > ti.try_number:
        raise NotFound(
            f"task instance {ti.task_id!r} of DAG run {ti.run_id!r} has no try {try_number}"
            f" (it has had {ti.try_number})"
        )
    tt = session.scalars(
        select(TaskTry)
        .where(TaskTry.task_instance_id == ti.id, TaskTry.try_number == try_number)
        .execution_options(populate_existing=True)
    ).first()
    path = try_log_path(settings.base_log_folder, ti.dag_id, ti.run_id, ti.task_id, try_number, ti.map_index)
    if tt is not None:
        recorded = FilePath(tt.log_path) if tt.log_path else path
        return TryLog(recorded if inside(recorded, settings.base_log_folder) else path, tt.end_date is not None)
    waiting = try_number == ti.try_number and ti.state in {s.value for s in TI_ACTIVE}
    return TryLog(path, not waiting)


def inside(path: FilePath, folder: str | FilePath) -> bool:
    """True if ``path``, symlinks and ``..`` resolved, is within ``folder`` (the only place logs are read from).

    A ``task_try.log_path`` elsewhere (a changed or tampered row) is not followed: the API reads the try's
    log where it belongs, under ``logging.base_log_folder``, instead.
    """
    return path.resolve().is_relative_to(FilePath(folder).resolve())


def read_bytes(path: FilePath, offset: int, max_bytes: int | None) -> bytes:
    """Bytes of ``path`` from ``offset`` (at most ``max_bytes``); a missing file, or an offset at or past its
    end, reads as nothing (the file system refuses to seek to some offsets the API accepts, e.g. 2**62)."""
    try:
        with open(path, "rb") as f:
            if offset >= os.fstat(f.fileno()).st_size:
                return b""
            f.seek(offset)
            return f.read() if max_bytes is None else f.read(max_bytes)
    except FileNotFoundError:
        return b""


def whole_lines(data: bytes, finished: bool, full: bool) -> bytes:
    """``data`` cut after its last newline, unless the try has ended (``finished``) or the read was ``full``."""
    if finished:
        return data
    cut = data.rfind(b"\n")
    if cut < 0:
        return data if full else b""
    return data[: cut + 1]


def _state(db: Database, settings: Settings, ti_id: int, try_number: int) -> TryLog:
    with db.read_session() as session:
        ti = session.get(TaskInstance, ti_id)
        if ti is None:  # deleted meanwhile (its DAG run was deleted): nothing more will come
            return TryLog(FilePath("/nonexistent"), True)
        return locate(session, settings, ti, try_number)


async def follow(
    db: Database, settings: Settings, ti_id: int, try_number: int, offset: int, masker: SecretMasker
) -> AsyncIterator[str]:
    """Yield the log from ``offset`` as it grows, in whole lines, until the try has ended and all is read.

    Stops after :data:`MAX_FOLLOW_SECONDS` whatever happens.
    """
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    pending = b""
    while True:
        where = await run_in_threadpool(_state, db, settings, ti_id, try_number)  # before reading: then all is read
        data = await run_in_threadpool(read_bytes, where.path, offset, None)
        offset += len(data)
        buffered = pending + data
        out = whole_lines(buffered, where.finished, False)
        pending = buffered[len(out) :]
        if out:
            yield masker.mask(out.decode("utf-8", "replace"))
        if where.finished:
            return
        if time.monotonic() > deadline:
            if pending:
                yield masker.mask(pending.decode("utf-8", "replace"))
            return
        await asyncio.sleep(POLL_SECONDS)


@router.get(
    f"{TI_PATH}/logs/{{try_number}}",
    response_model=schemas.LogChunk,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "JSON chunk, or with Accept: text/plain / stream=true the log followed to its end",
        },
        404: {"description": "no such DAG, DAG run, task instance or try"},
    },
)
def get_log(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    try_number: TryNumber,
    request: Request,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Byte offset to read from.")] = 0,
    stream: Annotated[bool, Query(description="Follow the log as text/plain until the try ends.")] = False,
    map_index: MapIndex = -1,
) -> Any:
    """A try's log from byte ``offset`` (secrets masked). JSON: at most 1 MiB per answer, then ask again
    from ``next_offset`` until ``finished``. ``Accept: text/plain`` or ``stream=true``: a text stream that
    follows the log while the try runs and ends once it has finished."""
    db = get_db(request)
    settings: Settings = request.app.state.settings
    with db.read_session() as session:
        _, ti = get_ti(session, dag_id, dag_run_id, task_id, map_index)
        where = locate(session, settings, ti, try_number)
        masker = stored_secrets_masker(session, get_encryptor(request))
        ti_id = ti.id
    accept = request.headers.get("accept", "")
    if stream or (accept.startswith("text/plain") and "application/json" not in accept):
        return StreamingResponse(
            follow(db, settings, ti_id, try_number, offset, masker),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    data = read_bytes(where.path, offset, MAX_CHUNK_BYTES)
    out = whole_lines(data, where.finished, len(data) >= MAX_CHUNK_BYTES)
    next_offset = offset + len(out)
    finished = where.finished and len(data) < MAX_CHUNK_BYTES
    return schemas.LogChunk(
        content=masker.mask(out.decode("utf-8", "replace")), offset=offset, next_offset=next_offset, finished=finished
    )


__all__ = ["follow", "inside", "locate", "router"]
