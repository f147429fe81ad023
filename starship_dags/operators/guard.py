"""Keeps the scheduled sync and a manual migration from writing into the target at the same time.

The scheduled sync skips its run while a manual migration is queued or running on the target
(the next sync picks up whatever is left). A manual migration waits, up to a timeout, for a
running sync to finish. The sync never waits, so the two cannot wait for each other.

Once the run may go on, the guard also marks the tasks this run's form leaves out (resources not
selected, cutover off) as skipped before they start: each task the scheduler starts costs a
process and a scheduling round, even one that only finds it has nothing to do. For the same
reason the guard is not a task of its own: the run's first task (``start``,
:class:`~starship_dags.operators.history.DiscoverDagsOperator`) is a guard that then lists the DAGs
to migrate.
"""

from __future__ import annotations

import time
from typing import Any

from starship_dags.compat import AirflowException

from starship_dags.compat import AirflowSkipException
from starship_dags.operators.skipping import skip_downstream
from starship_dags.versions import UnsupportedVersionError, check_pair
from starship_dags.exceptions import StarshipAuthError, StarshipError
from starship_dags.operators.base import StarshipOperator, as_bool

#: The run's first task: the guard, and the discovery of the DAGs (the mapped history's input).
GUARD_TASK_ID = "start"
SKIP_REASON_KEY = "skip_reason"
REFUSED_KEY = "refused"  # why the run refused to start (a pair of versions outside the matrix)


def stood_aside(task: Any, context: Any) -> str | None:
    """Why this DAG run stood aside for another migration run (None: it did not)."""
    if not (task.has_dag() and GUARD_TASK_ID in task.dag.task_ids):
        return None
    return context["ti"].xcom_pull(task_ids=GUARD_TASK_ID, key=SKIP_REASON_KEY)


def refused_reason(task: Any, context: Any) -> str | None:
    """Why this DAG run refused to start (a pair of versions outside the matrix); None: it did not."""
    if not (task.has_dag() and GUARD_TASK_ID in task.dag.task_ids):
        return None
    return context["ti"].xcom_pull(task_ids=GUARD_TASK_ID, key=REFUSED_KEY)


class ActiveRunGuardOperator(StarshipOperator):
    """:param other_dag_id: the other migration DAG on the target.
    :param wait: wait for its active runs (manual migration) instead of skipping (scheduled sync).
    :param children: task id -> whether it is meant to run, for direct downstream tasks of this one
        (templated). Those not meant to run are marked skipped when the guard lets the run go on.

    Subclasses do their own work in :meth:`go_on`, whose value the task returns."""

    #: Airflow 3's scheduler honours the skip list this task leaves in XCom (as Airflow 2's does)
    #: only for operators that say they skip downstream tasks.
    inherits_from_skipmixin = True
    template_fields = (*StarshipOperator.template_fields, "timeout_minutes", "children")
    ui_color = "#eeeeee"

    def __init__(self, *, other_dag_id: str, wait: bool, timeout_minutes: Any = 30, poll_seconds: float = 15,
                 children: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.children = dict(children or {})
        self.other_dag_id = other_dag_id
        self.wait = wait
        self.timeout_minutes = timeout_minutes
        self.poll_seconds = poll_seconds

    def execute(self, context: Any) -> Any:
        idle = sorted(task_id for task_id, meant in self.children.items() if not as_bool(meant))
        if idle:
            self.log.info("Not selected for this run, skipped: %s", ", ".join(idle))
        # Before the check: when this run stands aside, the skip of this task reaches the tasks that
        # wait for all upstream tasks to finish whatever their state (trigger rule all_done) too.
        skip_downstream(context, idle, ends_task=False)
        self.check_versions(context)
        self.stand_aside_or_wait(context)
        return self.go_on(context)

    def check_versions(self, context: Any) -> None:
        """Refuse a source and target pair outside the tested matrix (starship_dags.versions), before
        anything is written; log the pair's limits otherwise."""
        source, target = self.source_hook.airflow_version, self.target_hook.airflow_version
        try:
            limits = check_pair(source, target)
        except UnsupportedVersionError as err:
            context["ti"].xcom_push(key=REFUSED_KEY, value=str(err))
            raise
        self.log.info("Migrating from Airflow %s into Airflow %s%s", source, target,
                      "".join(f"\n  limit: {text}" for text in limits) or " (no known limits)")

    def go_on(self, context: Any) -> Any:
        """The task's own work once the run may go on; its value is the task's return value."""
        return None

    def stand_aside_or_wait(self, context: Any) -> None:
        """Returns when this run may go on; raises AirflowSkipException when it stands aside."""
        deadline = time.monotonic() + float(self.timeout_minutes or 0) * 60
        while True:
            try:
                active = self.target_hook.rest_active_runs(self.other_dag_id)
            except StarshipAuthError:
                raise
            except StarshipError as err:  # the check is a courtesy; it must not block the migration
                self.log.warning("Could not check %s's runs on the target, going on: %s", self.other_dag_id, err)
                return
            if not active:
                return
            runs = ", ".join(str(r.get("dag_run_id") or r.get("run_id")) for r in active[:3])
            message = f"{self.other_dag_id} is active on the target ({runs})"
            if not self.wait:
                message += ": this run skips; the next one picks up what is left"
                context["ti"].xcom_push(key=SKIP_REASON_KEY, value=message)
                raise AirflowSkipException(message)
            if (self.target_hook.rest_dag(self.other_dag_id) or {}).get("is_paused"):
                # A paused DAG's runs do not progress: waiting for them would last until the timeout.
                self.log.warning("%s, but it is paused, so its runs stand still; going on", message)
                return
            if time.monotonic() >= deadline:
                raise AirflowException(f"{message} for more than {self.timeout_minutes} min; try again later")
            self.log.info("%s; waiting for it to finish", message)
            time.sleep(self.poll_seconds)


__all__ = ["GUARD_TASK_ID", "REFUSED_KEY", "SKIP_REASON_KEY", "refused_reason", "ActiveRunGuardOperator", "stood_aside"]
