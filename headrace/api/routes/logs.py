"""``…/taskInstances/{task_id}/logs/{try_number}``: a try's log, by byte offset or followed as a stream.

The log is read from the try's local file, else (once the worker's copy is
gone) from ``logging.remote_base_log_folder`` (:mod:`headrace.logs.locate`).

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
import time
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from headrace.api import schemas
from headrace.api.auth import get_db, get_encryptor, require
from headrace.api.routes.task_instances import MapIndex, get_ti
from headrace.api.routes.tries import TryNumber
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.exceptions import RemoteLogError
from headrace.logs.locate import TryLog, inside, locate, read_log
from headrace.masking import SecretMasker
from headrace.secrets_store import stored_secrets_masker
from headrace.storage.stores import Stores

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


def stores_of(request: Request) -> Stores:
    """The app's object stores (remote logs), made on first use."""
    stores = getattr(request.app.state, "stores", None)
    if stores is None:
        stores = request.app.state.stores = Stores(request.app.state.settings, get_db(request))
    assert isinstance(stores, Stores)
    return stores


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


def _read_or_nothing(stores: Stores, where: TryLog, offset: int) -> bytes:
    """What a followed log has from ``offset``; a remote store that cannot be read is nothing this time."""
    try:
        return read_log(stores, where, offset, None)
    except RemoteLogError:
        return b""


async def follow(
    db: Database,
    settings: Settings,
    ti_id: int,
    try_number: int,
    offset: int,
    masker: SecretMasker,
    stores: Stores | None = None,
) -> AsyncIterator[str]:
    """Yield the log from ``offset`` as it grows, in whole lines, until the try has ended and all is read.

    Stops after :data:`MAX_FOLLOW_SECONDS` whatever happens.
    """
    deadline = time.monotonic() + MAX_FOLLOW_SECONDS
    stores = stores if stores is not None else Stores(settings, db)
    pending = b""
    while True:
        where = await run_in_threadpool(_state, db, settings, ti_id, try_number)  # before reading: then all is read
        data = await run_in_threadpool(_read_or_nothing, stores, where, offset)
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
            follow(db, settings, ti_id, try_number, offset, masker, stores_of(request)),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    data = read_log(stores_of(request), where, offset, MAX_CHUNK_BYTES)
    out = whole_lines(data, where.finished, len(data) >= MAX_CHUNK_BYTES)
    next_offset = offset + len(out)
    finished = where.finished and len(data) < MAX_CHUNK_BYTES
    return schemas.LogChunk(
        content=masker.mask(out.decode("utf-8", "replace")), offset=offset, next_offset=next_offset, finished=finished
    )


__all__ = ["follow", "inside", "locate", "router"]
