"""After tries end, deciding only what they feed gives the same states as deciding the whole run.

Random DAGs (trigger rules of every kind, fan-in and fan-out, a branch's skips) are driven round by round: some
scheduled task instances end (success, failed or skipped; a branch also skips one of its downstream instances
still in ``none``), then the run is examined twice from the same states — once told which tasks' tries ended
(:func:`headrace.scheduler.readiness.examine_run`'s partial examination) and once whole — and every task
instance must end in the same state.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update

from headrace import DAG
from headrace.config import Settings
from headrace.db.engine import Database
from headrace.db.models import TaskInstance
from headrace.operators import EmptyOperator
from headrace.scheduler.dagcache import DagCache
from headrace.scheduler.readiness import examine_runs
from headrace.scheduler.runs import start_queued_runs, trigger_dag
from headrace.states import TaskInstanceState as TI

from .conftest import NOW, move_ti, store_dags
from .test_readiness import RULES


def random_dag(rng: random.Random, dag_id: str) -> DAG:
    with DAG(dag_id) as dag:
        n = rng.randint(4, 14)
        tasks = [EmptyOperator(task_id=f"t{i:02d}", trigger_rule=rng.choice(RULES)) for i in range(n)]
        for j in range(1, n):
            for i in range(j):
                if rng.random() < 0.3:
                    tasks[i] >> tasks[j]
    return dag


def _states(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {task_id: state for task_id, state in session.execute(select(TaskInstance.task_id, TaskInstance.state))}


def _restore(db: Database, states: dict[str, str]) -> None:
    with db.session() as session:
        for task_id, state in states.items():
            session.execute(update(TaskInstance).where(TaskInstance.task_id == task_id).values(state=state))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("seed", range(30))
def test_partial_examination_decides_as_the_whole_run(settings: Settings, db: Database, seed: int) -> None:
    rng = random.Random(seed)
    dag = random_dag(rng, f"random_{seed}")
    store_dags(settings, db, dag)
    with db.session() as session:
        trigger_dag(session, dag.dag_id, now=NOW)
        start_queued_runs(session, NOW)
    with db.session() as session:
        examine_runs(session, NOW, cache=DagCache())
        run_pk = session.scalar(select(TaskInstance.dag_run_id))
    assert run_pk is not None
    rounds = 0
    while True:
        with db.session() as session:
            rows = session.execute(select(TaskInstance.id, TaskInstance.task_id, TaskInstance.state)).all()
        scheduled = [(ti_id, task_id) for ti_id, task_id, state in rows if state == TI.SCHEDULED.value]
        if not scheduled:
            break
        rounds += 1
        ended = rng.sample(scheduled, rng.randint(1, len(scheduled)))
        ids = {task_id: ti_id for ti_id, task_id, _ in rows}
        for ti_id, task_id in ended:
            outcome = rng.choice([TI.SUCCESS, TI.SUCCESS, TI.FAILED, TI.SKIPPED])
            move_ti(db, ti_id, outcome)
            waiting = [t for t in sorted(dag.task_dict[task_id].downstream_task_ids) if _states(db)[t] == TI.NONE.value]
            if outcome is TI.SUCCESS and waiting and rng.random() < 0.3:  # a branch skipped one of its paths
                move_ti(db, ids[rng.choice(waiting)], TI.SKIPPED)
        before = _states(db)
        with db.session() as session:
            examine_runs(session, NOW, cache=DagCache(), run_ids=[run_pk], ended={run_pk: {t for _, t in ended}})
        partial = _states(db)
        _restore(db, before)
        with db.session() as session:
            examine_runs(session, NOW, cache=DagCache(), run_ids=[run_pk])
        whole = _states(db)
        assert partial == whole, f"seed {seed}, round {rounds}: ended {sorted(t for _, t in ended)}"
    assert all(TI(state).is_finished for state in _states(db).values()), _states(db)
