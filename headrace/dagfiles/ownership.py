"""Which DAG file a ``dag_id`` belongs to when several files define it.

A DAG is bound to one file (``dag.fileloc``). When a second file defines the
same ``dag_id``, that DAG of the second file is not stored: the second file
gets the import error ``Ignoring DAG <dag_id> from <second file> - also found
in <first file>`` (Airflow's wording), its other DAGs are stored as usual, and
the DAG stays bound to the first file — whichever of the two is parsed later,
and whatever changes in either.

"First" is the file that already owns the DAG in the metadata DB (an active
DAG whose file still lists it in ``dag_file.dag_ids``). When two files claim a
DAG nobody owned before in the same pass, the lower path wins, whatever order
their parses end in.

Every file's ``dag_file.dag_ids`` lists all the DAG ids it defines, the ones it
was refused included. So when the owning file stops defining the DAG (edited,
deleted, or its DAG deactivated), the other files that define it are marked
for parsing again (:func:`reparse_claimants`: their ``dag_file.mtime`` is
reset, so the next pass parses them even though they did not change, and the
pass in progress parses them once more too): the next of them to be parsed
takes the DAG over, without the user touching that file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.db.models import DagFile, DagModel

STALE_MTIME = -1.0
"""``dag_file.mtime`` of a file that must be parsed again although it did not change (no real file has it)."""


def duplicate_message(dag_id: str, incoming: str, existing: str) -> str:
    """The import error of ``incoming``, which defines ``dag_id`` already bound to ``existing`` (both file paths)."""
    return f"Ignoring DAG {dag_id} from {incoming} - also found in {existing}"


def owner_of(session: Session, dag_id: str) -> str | None:
    """The file ``dag_id`` is bound to, if an active DAG whose file still defines it; else None (free to take)."""
    dag = session.get(DagModel, dag_id)
    if dag is None or not dag.is_active or not dag.fileloc:
        return None
    row = session.get(DagFile, dag.fileloc)
    if row is None or dag_id not in (row.dag_ids or ()):
        return None
    return dag.fileloc


def blocking_owner(session: Session, dag_id: str, fileloc: str, bound_this_pass: Mapping[str, str]) -> str | None:
    """The file that keeps ``fileloc`` from storing ``dag_id``; None when ``fileloc`` may store it.

    ``bound_this_pass`` is ``{dag_id: fileloc}`` of the DAGs that were free
    before the current pass and were bound during it: against such a claim the
    lower path wins (so the outcome does not depend on which parse ended
    first); against an older binding, the owner wins.
    """
    owner = owner_of(session, dag_id)
    if owner is None or owner == fileloc:
        return None
    if bound_this_pass.get(dag_id) == owner and fileloc < owner:
        return None
    return owner


def reparse_claimants(session: Session, dag_ids: Iterable[str], fileloc: str) -> list[str]:
    """Mark for parsing again the files other than ``fileloc`` that define one of ``dag_ids``; return them.

    Call it when ``fileloc`` stopped owning ``dag_ids`` (it no longer defines
    them, or it is gone): one of those files takes them over when parsed.
    Reads every ``dag_file`` row, so call it only when there are such DAGs.
    """
    wanted = set(dag_ids)
    if not wanted:
        return []
    marked: list[str] = []
    for row in session.scalars(select(DagFile).where(DagFile.fileloc != fileloc)):
        if wanted & set(row.dag_ids or ()):
            row.mtime = STALE_MTIME
            marked.append(row.fileloc)
    return sorted(marked)


__all__ = ["STALE_MTIME", "blocking_owner", "duplicate_message", "owner_of", "reparse_claimants"]
