"""Skipping this run's later tasks before the scheduler starts them (each started task costs the
target a process and a scheduling round, even one that finds nothing to do).

:func:`skip_downstream` leaves the skip list Airflow's scheduler reads (see
:func:`starship_dags.compat.skip_own_downstream`). On Airflow 2 it also marks those of the task
instances that already exist and wait skipped at once, with the same update Airflow 2's own
``SkipMixin`` makes: this is the one place the package writes to a metadata database, and it is the
target's own (the migration DAG runs inside the target), only for this run's own task instances.
Left to the scheduler, they are skipped in its pass after this task ends, and the task waiting for
them (the report) only in the pass after that: a scheduling round later.
"""

from __future__ import annotations

import logging
from typing import Any

from starship_dags.compat import skip_own_downstream

log = logging.getLogger(__name__)


def skip_downstream(context: Any, task_ids: list[str], *, ends_task: bool = True) -> None:
    """Skip these direct downstream tasks of the running task (on Airflow 3 with ``ends_task``, this
    ends the task: call it last)."""
    if skip_own_downstream(context, task_ids, ends_task=ends_task):
        skip_waiting_now(context["ti"], task_ids)


def skip_waiting_now(ti: Any, task_ids: list[str]) -> None:
    """Airflow 2: mark those of these task instances (same run, same map index) that exist and wait
    to be scheduled skipped now. An optimisation only: the skip list covers them anyway."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils import timezone
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        now = timezone.utcnow()
        with create_session() as session:
            session.query(TaskInstance).filter(
                TaskInstance.dag_id == ti.dag_id,
                TaskInstance.run_id == ti.run_id,
                TaskInstance.task_id.in_(list(task_ids)),
                TaskInstance.map_index == ti.map_index,
                TaskInstance.state.is_(None),
            ).update({TaskInstance.state: TaskInstanceState.SKIPPED, TaskInstance.start_date: now,
                      TaskInstance.end_date: now}, synchronize_session=False)
    except Exception as err:  # no database access (say): the skip list still skips them
        log.debug("Left skipping %s to the scheduler: %s", task_ids, err)
