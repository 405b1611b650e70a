"""Edge labels: ``a >> Label("valid") >> b`` names the dependency, shown on the graph's edge (Airflow's ``Label``).

A label changes nothing the scheduler does; it is stored in the DAG's
``edge_info`` (``{(upstream_id, downstream_id): {"label": text}}``) and in the
serialized DAG. It can stand between tasks, task groups, XComArgs and lists
of them, on either side (``b << Label("x") << a``), or be given directly:
``a.set_downstream(b, edge_modifier=Label("x"))``.
"""

from __future__ import annotations

from typing import Any

from headrace.exceptions import DagDefinitionError


class Label:
    """An edge label (``label``: the text, a non-empty str) waiting between two sides of ``>>`` / ``<<``.

    Raises ``DagDefinitionError`` for a label that is not a non-empty str.
    """

    def __init__(self, label: str) -> None:
        if not isinstance(label, str) or not label.strip():
            raise DagDefinitionError(f"Label needs a non-empty string, got {label!r}")
        self.label = label
        self._upstream: list[Any] = []
        self._downstream: list[Any] = []

    def __repr__(self) -> str:
        return f"Label({self.label!r})"

    def add_upstream(self, other: Any) -> None:
        """Remember ``other`` (task, group, XComArg or list) as the upstream side (``other >> label``)."""
        self._upstream.append(other)

    def add_downstream(self, other: Any) -> None:
        """Remember ``other`` as the downstream side (``other << label``)."""
        self._downstream.append(other)

    def set_downstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        """Make ``other`` downstream of every upstream side given so far, with this label on the edges."""
        if not self._upstream:
            raise DagDefinitionError(
                f"{self!r} >> {other!r}: the label has nothing upstream (write a >> Label(...) >> b)"
            )
        for up in self._upstream:
            _relate(up, other, self)

    def set_upstream(self, other: Any, edge_modifier: Label | None = None) -> None:
        """Make ``other`` upstream of every downstream side given so far, with this label on the edges."""
        if not self._downstream:
            raise DagDefinitionError(
                f"{self!r} << {other!r}: the label has nothing downstream (write b << Label(...) << a)"
            )
        for down in self._downstream:
            _relate(other, down, self)

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Label:
        """``[a, b] >> Label("x")``."""
        self.add_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Label:
        """``[a, b] << Label("x")``."""
        self.add_downstream(other)
        return self


def _relate(up: Any, down: Any, label: Label) -> None:
    """``up >> down`` with ``label`` on every edge; ``up`` may be a list."""
    if isinstance(up, (list, tuple)):
        for item in up:
            _relate(item, down, label)
        return
    setter = getattr(up, "set_downstream", None)
    if setter is None:
        raise DagDefinitionError(f"cannot set a dependency from {up!r}: not a task, task group or XComArg")
    setter(down, edge_modifier=label)


__all__ = ["Label"]
