"""The scheduler: turns schedules and triggers into DAG runs and hands ready tries to an executor.

Modules: ``loop`` (the one-screen loop, :func:`headrace.scheduler.loop.run`),
``runs`` (create, trigger, backfill, start, finish DAG runs), ``readiness``
(trigger rules, queueing within pools and limits), ``housekeeping`` (zombies,
stuck tries, adoption after a restart), ``lease`` (one active scheduler),
``callbacks`` (DAG-level callbacks in children), ``dagcache`` (serialized DAGs
by version).
"""
