"""Setup and teardown tasks, with Airflow's semantics (AIP-52).

A *setup* task makes a resource (a cluster, a table) and a *teardown* task
removes it; the work between them is the rest of the graph. Mark them with
``@setup`` / ``@teardown``, ``task.as_setup()`` or
``task.as_teardown(setups=..., on_failure_fail_dagrun=...)``. As in Airflow:

* a teardown's trigger rule is ``all_done_setup_success``: it runs once every
  direct upstream task is done, provided at least one of its direct upstream
  setups succeeded (all of them skipped: skipped; none succeeded:
  upstream_failed);
* a work task whose *relevant* setups (:func:`relevant_setups`) did not all
  succeed does not run, even when its own trigger rule (``all_done`` …) would
  let it: a failed setup makes it ``upstream_failed``, a skipped one ``skipped``;
* a teardown does not decide the DAG run's outcome unless it was made with
  ``on_failure_fail_dagrun=True``: the run's "leaves" are
  :func:`effective_leaves`;
* clearing a task also clears its relevant setups and their teardowns
  (:func:`clear_closure`).

``with setup_task >> teardown_task:`` (or ``with setup_task:`` /
``with teardown_task:``) wires the tasks created inside: their roots get the
setups upstream, their leaves the teardowns downstream
(:class:`SetupTeardownContext`).

The graph functions take any mapping of task id → node with
``upstream_task_ids``, ``downstream_task_ids``, ``is_setup``, ``is_teardown``
and ``on_failure_fail_dagrun`` — operators (``dag.task_dict``) and the
scheduler's serialized tasks alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from headrace.authoring.trigger_rules import TriggerRule
from headrace.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from headrace.authoring.task import BaseOperator


class Node(Protocol):
    """What the graph functions read of a task."""

    @property
    def upstream_task_ids(self) -> Iterable[str]: ...
    @property
    def downstream_task_ids(self) -> Iterable[str]: ...
    @property
    def is_setup(self) -> bool: ...
    @property
    def is_teardown(self) -> bool: ...
    @property
    def on_failure_fail_dagrun(self) -> bool: ...


def flat_relatives(tasks: Mapping[str, Node], task_id: str, *, upstream: bool) -> set[str]:
    """Every task id upstream (or downstream) of ``task_id``, transitively, not including it."""
    seen: set[str] = set()
    todo = list(tasks[task_id].upstream_task_ids if upstream else tasks[task_id].downstream_task_ids)
    while todo:
        tid = todo.pop()
        if tid in seen or tid not in tasks:
            continue
        seen.add(tid)
        node = tasks[tid]
        todo.extend(node.upstream_task_ids if upstream else node.downstream_task_ids)
    return seen


def _teardowns_of(tasks: Mapping[str, Node], setup_id: str) -> list[str]:
    return sorted(t for t in tasks[setup_id].downstream_task_ids if t in tasks and tasks[t].is_teardown)


def setups_and_teardowns(tasks: Mapping[str, Node], task_id: str) -> set[str]:
    """The relevant upstream setups of ``task_id`` and their teardowns (Airflow's
    ``get_upstreams_only_setups_and_teardowns``).

    A setup upstream of the task is *relevant* when one of its teardowns is
    downstream of the task, or when it has no teardown at all.
    """
    down_teardowns = {t for t in flat_relatives(tasks, task_id, upstream=False) if tasks[t].is_teardown}
    found: set[str] = set()
    for tid in flat_relatives(tasks, task_id, upstream=True):
        if not tasks[tid].is_setup:
            continue
        teardowns = _teardowns_of(tasks, tid)
        if not teardowns or down_teardowns.intersection(tasks[tid].downstream_task_ids):
            found.add(tid)
            found.update(t for t in teardowns if t != task_id)
    return found


def relevant_setups(tasks: Mapping[str, Node], task_id: str) -> frozenset[str]:
    """The setups a (non-teardown) task needs to have succeeded before it runs (see :func:`setups_and_teardowns`)."""
    if tasks[task_id].is_teardown:
        return frozenset()
    return frozenset(t for t in setups_and_teardowns(tasks, task_id) if tasks[t].is_setup)


def indirect_setups(tasks: Mapping[str, Node]) -> dict[str, frozenset[str]]:
    """task id → its relevant setups that are not direct upstream tasks (only tasks that have some).

    These are what the scheduler checks besides a task's trigger rule (Airflow's setup constraint).
    """
    out: dict[str, frozenset[str]] = {}
    if not any(node.is_setup for node in tasks.values()):
        return out
    for tid, node in tasks.items():
        extra = relevant_setups(tasks, tid) - set(node.upstream_task_ids)
        if extra:
            out[tid] = frozenset(extra)
    return out


def effective_leaves(tasks: Mapping[str, Node]) -> list[str]:
    """The tasks whose state decides a DAG run's outcome (Airflow's rule), sorted.

    A teardown counts only with ``on_failure_fail_dagrun``; a task whose only
    downstream tasks are such ignorable teardowns counts as a leaf. A DAG of
    teardowns only falls back to its plain leaves.
    """

    def ignorable(tid: str) -> bool:
        return tasks[tid].is_teardown and not tasks[tid].on_failure_fail_dagrun

    leaves = sorted(
        tid
        for tid, node in tasks.items()
        if not ignorable(tid) and all(ignorable(d) for d in node.downstream_task_ids if d in tasks)
    )
    return leaves or sorted(tid for tid, node in tasks.items() if not list(node.downstream_task_ids))


def clear_closure(
    tasks: Mapping[str, Node], task_ids: Iterable[str], *, include_upstream: bool, include_downstream: bool
) -> set[str]:
    """The tasks to clear when ``task_ids`` are cleared (Airflow's ``partial_subset`` rules).

    ``task_ids`` plus, transitively, their upstream (``include_upstream``) and
    downstream (``include_downstream``) tasks; plus, for every cleared work
    task, its relevant setups and their teardowns; with ``include_upstream``,
    the teardowns of every upstream setup; and a cleared setup's teardowns.
    """
    start = set(task_ids)
    out = set(start)
    for tid in start:
        if include_downstream:
            for rel in flat_relatives(tasks, tid, upstream=False):
                out.add(rel)
                if rel not in start and not tasks[rel].is_setup and not tasks[rel].is_teardown:
                    out |= setups_and_teardowns(tasks, rel)
        if include_upstream:
            for up in flat_relatives(tasks, tid, upstream=True):
                out.add(up)
                if tasks[up].is_setup:
                    out.update(t for t in _teardowns_of(tasks, up) if t != tid)
        elif not tasks[tid].is_setup:
            out |= setups_and_teardowns(tasks, tid)
        if tasks[tid].is_setup and not include_downstream:
            out.update(_teardowns_of(tasks, tid))
    return out


def group_leaves(tasks: list[BaseOperator]) -> list[BaseOperator]:
    """The leaves of a task group's ``tasks`` as Airflow picks them for ``group >> x``.

    A task with no downstream task in the group is a leaf, except a teardown:
    for a teardown leaf, its upstream work tasks in the group (not its setups)
    that have no other non-teardown downstream task in the group stand in for it,
    so ``group >> x`` does not wait for the group's teardowns.
    """
    ids = {t.task_id for t in tasks}
    by_id = {t.task_id: t for t in tasks}

    def has_work_downstream(task: BaseOperator, exclude: str) -> bool:
        return any(d != exclude and d in ids and not by_id[d].is_teardown for d in task.downstream_task_ids)

    def stand_ins(task: BaseOperator) -> Iterator[BaseOperator]:
        for uid in sorted(task.upstream_task_ids & ids):
            up = by_id[uid]
            if up.is_teardown:
                yield from stand_ins(up)
            elif task.is_teardown and up.is_setup:
                continue
            elif not has_work_downstream(up, task.task_id):
                yield up

    out: list[BaseOperator] = []
    for task in tasks:
        if task.downstream_task_ids & ids:
            continue
        for leaf in stand_ins(task) if task.is_teardown else iter([task]):
            if leaf not in out:
                out.append(leaf)
    return out


# --- authoring ----------------------------------------------------------------


@dataclass
class _Scope:
    setups: list[BaseOperator]
    teardowns: list[BaseOperator]
    tasks: list[BaseOperator] = field(default_factory=list)
    """Work tasks created inside the ``with`` block, in order."""


class SetupTeardownContext:
    """The stack of ``with setup >> teardown:`` blocks; tasks created inside are wired on exit.

    On exit, the work tasks created in the block (not setups or teardowns)
    with no upstream task get every setup upstream, and those with no
    downstream task get every teardown downstream (if all have relatives, the
    first / last task created is used), as Airflow does.
    """

    _stack: list[_Scope] = []

    @classmethod
    def push(cls, task: BaseOperator) -> None:
        """Enter a block for ``task`` (a setup or teardown). Raises ``DagDefinitionError`` for another task."""
        if task.is_teardown:
            teardowns = [task]
            setups = [task.dag.get_task(t) for t in sorted(task.upstream_task_ids)] if task.dag else []
            setups = [s for s in setups if s.is_setup]
        elif task.is_setup:
            setups = [task]
            teardowns = [task.dag.get_task(t) for t in sorted(task.downstream_task_ids)] if task.dag else []
            teardowns = [t for t in teardowns if t.is_teardown]
        else:
            raise DagDefinitionError(
                f"task {task.task_id!r}: only setup/teardown tasks can be used as context managers"
            )
        cls._stack.append(_Scope(setups, teardowns))

    @classmethod
    def note_task(cls, task: BaseOperator) -> None:
        """Remember a newly created work task in every open block."""
        if cls._stack and not task.is_setup and not task.is_teardown:
            for scope in cls._stack:
                scope.tasks.append(task)

    @classmethod
    def pop(cls) -> None:
        """Leave the innermost block and wire its work tasks to its setups and teardowns."""
        scope = cls._stack.pop()
        work = [t for t in scope.tasks if not t.is_setup and not t.is_teardown]
        if not work:
            return
        if scope.setups:
            roots = [t for t in work if not t.upstream_task_ids] or work[:1]
            for s in scope.setups:
                s.set_downstream(roots)
        if scope.teardowns:
            leaves = [t for t in work if not t.downstream_task_ids] or work[-1:]
            for td in scope.teardowns:
                td.set_upstream(leaves)


class SetupTeardownMixin:
    """``as_setup`` / ``as_teardown`` / ``with`` for operators (mixed into ``BaseOperator``)."""

    task_id: str
    trigger_rule: Any
    is_setup: bool = False
    """True for a setup task (``@setup``, ``as_setup()``)."""
    is_teardown: bool = False
    """True for a teardown task (``@teardown``, ``as_teardown()``)."""
    _on_failure_fail_dagrun: bool = False

    @property
    def on_failure_fail_dagrun(self) -> bool:
        """Whether this teardown's failure fails the DAG run (default False: teardowns don't decide the run)."""
        return self._on_failure_fail_dagrun

    @on_failure_fail_dagrun.setter
    def on_failure_fail_dagrun(self, value: bool) -> None:
        if value and not self.is_teardown:
            raise DagDefinitionError(
                f"cannot set on_failure_fail_dagrun on task {self.task_id!r}: it is not a teardown task"
            )
        self._on_failure_fail_dagrun = bool(value)

    def as_setup(self) -> Any:
        """Mark this task a setup task (a mapped one too: each of its instances counts as a setup); return it."""
        self.is_setup = True
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> Any:
        """Mark this task a teardown (trigger rule ``all_done_setup_success``); return it.

        ``setups`` (a task, XComArg or list of them) become setup tasks upstream
        of it. ``on_failure_fail_dagrun=True`` lets its failure fail the DAG run. A mapped task may be a
        teardown (each index waits for the setups, every instance of a mapped setup counted) as in Airflow.
        """
        self.is_teardown = True
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        if on_failure_fail_dagrun is not None:
            self.on_failure_fail_dagrun = on_failure_fail_dagrun
        if setups is not None:
            for s in _items(setups):
                s.as_setup()
                s.set_downstream(self)
        return self

    def __enter__(self) -> type[SetupTeardownContext]:
        SetupTeardownContext.push(self)  # type: ignore[arg-type]
        return SetupTeardownContext

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        SetupTeardownContext.pop()


def _items(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple, set)):
        yield from value
    else:
        yield value


__all__ = [
    "Node",
    "SetupTeardownContext",
    "SetupTeardownMixin",
    "clear_closure",
    "effective_leaves",
    "flat_relatives",
    "group_leaves",
    "indirect_setups",
    "relevant_setups",
    "setups_and_teardowns",
]
