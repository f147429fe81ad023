"""Airflow 2 / Airflow 3 import differences for DAG authoring, in one place.

The package runs inside the *target* Airflow, which may be 2.10+ or 3.x. Airflow 3 moved the
authoring API to ``airflow.sdk``; Airflow 2 keeps it under ``airflow.models`` and friends.
"""

from __future__ import annotations

import re

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_MAJOR = int(AIRFLOW_VERSION.split(".", 1)[0])
#: The XCom of a task's skip list, and its field, as Airflow 2 and 3 read them (NotPreviouslySkippedDep)
SKIPMIXIN_KEY, SKIPMIXIN_SKIPPED = "skipmixin_key", "skipped"

if AIRFLOW_MAJOR >= 3:
    from airflow.sdk import DAG, BaseOperator, Param, TaskGroup, task_group
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.10 / 2.11
    from airflow.exceptions import AirflowSkipException
    from airflow.models import DAG, BaseOperator
    from airflow.models.param import Param
    from airflow.utils.log.secrets_masker import mask_secret
    from airflow.decorators import task_group
    from airflow.utils.task_group import TaskGroup


def skip_own_downstream(context, task_ids: list[str], *, ends_task: bool = True) -> None:
    """Mark these direct downstream tasks of the running task, in its own map index, skipped.

    The scheduler then never starts them. Airflow 2 reads the skip list from an XCom of the parent
    (``NotPreviouslySkippedDep``, which also covers tasks of a mapped group not expanded yet).
    Airflow 3 skips them when the task ends with ``DownstreamTasksSkipped``, so on Airflow 3 this
    must be the task's last call: it raises. That ending pushes no return value, though, so a task
    whose value is a mapped task's input passes ``ends_task=False``: it leaves the same XCom as on
    Airflow 2, which Airflow 3's scheduler honours for an unmapped operator whose class sets
    ``inherits_from_skipmixin``.
    """
    if not task_ids:
        return
    ti = context["ti"]
    if AIRFLOW_MAJOR >= 3 and ends_task:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        raise DownstreamTasksSkipped(tasks=[(task_id, ti.map_index) for task_id in task_ids])
    ti.xcom_push(key=SKIPMIXIN_KEY, value={SKIPMIXIN_SKIPPED: list(task_ids)})
    if AIRFLOW_MAJOR < 3:
        _skip_waiting_now(ti, task_ids)


def _skip_waiting_now(ti, task_ids: list[str]) -> None:
    """Airflow 2: mark those of these task instances that exist and wait to be scheduled skipped at
    once, as Airflow 2's own skipping does for unmapped tasks. Left to the scheduler, they are
    skipped in its pass after this task ends, and the task that waits for them (the report) only
    in the pass after that: a scheduling round later. The XCom above covers the rest."""
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
    except Exception as err:  # an optimisation only (no database access, say): the XCom still skips them
        import logging

        logging.getLogger(__name__).debug("Left skipping %s to the scheduler: %s", task_ids, err)


try:  # the same list of names Airflow itself hides in logs and the UI
    if AIRFLOW_MAJOR >= 3:
        from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key
    else:
        from airflow.utils.log.secrets_masker import should_hide_value_for_key
except ImportError:  # pragma: no cover - private module moved
    _SENSITIVE = re.compile(r"pass|secret|token|api_?key|private|credential|auth", re.IGNORECASE)

    def should_hide_value_for_key(name) -> bool:
        return isinstance(name, str) and bool(_SENSITIVE.search(name))


def is_sensitive_key(name: str) -> bool:
    """True for variable keys and extra fields whose values must never be logged."""
    return bool(should_hide_value_for_key(name))


__all__ = [
    "AIRFLOW_MAJOR",
    "AirflowSkipException",
    "BaseOperator",
    "DAG",
    "Param",
    "TaskGroup",
    "is_sensitive_key",
    "mask_secret",
    "skip_own_downstream",
    "task_group",
]
