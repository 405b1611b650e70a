"""Observability: lifecycle listeners (metrics, StatsD, notifications), alert delivery and deadlines.

* :mod:`~headrace.observability.listener` — the ``Listener`` interface the scheduler emits to;
* :mod:`~headrace.observability.metrics` — Prometheus: scheduler registry and DB collector;
* :mod:`~headrace.observability.statsd` — the same figures sent to StatsD;
* :mod:`~headrace.observability.notifications` — writes the ``notification`` outbox;
* :mod:`~headrace.observability.delivery` — sends outbox rows by email and webhook;
* :mod:`~headrace.observability.sweep` — writes the alerts of tries / runs that ended while no scheduler saw them;
* :mod:`~headrace.observability.deadlines` — finds DAG runs / task instances past their deadline.

This package sits between ``db`` and ``scheduler``: the scheduler imports it,
it never imports the scheduler, the API or the CLI.
"""
