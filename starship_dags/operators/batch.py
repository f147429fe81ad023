"""History tasks work on a batch of DAGs, one DAG after another.

``start`` deals the source's DAGs out in batches; per batch, a mapped task group runs ``dag_runs``
(:mod:`~starship_dags.operators.dag_runs`) and then the XCom, log and validation tasks. Each is a
:class:`BatchOperator`: a summary per DAG, the batch's summaries pushed in one XCom (also when the
task is killed), and the task fails at the end when any DAG had a failure, after doing the rest.
An error that every DAG would meet the same way (refused credentials, TLS, Starship missing, an
unreachable server) stops the batch at once.

A batch rather than a task per DAG: each task costs the target's scheduler a process start and about
a CPU-second of its own work, so a few tasks with many DAGs each copy faster (see docs/design.md).
The tasks after ``dag_runs`` are :class:`PlannedOperator`: they work from its plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any

from starship_dags import sync_state
from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipNotInstalledError,
    StarshipTLSError,
    StarshipTransportError,
)
from starship_dags.operators.base import MigrationOperator
from starship_dags.operators.start import PROBE_RUNS
from starship_dags.plan import DagPlan, plans_by_dag
from starship_dags.report import Summary, failed_total, summaries_by_dag
from starship_dags.translate import parse_datetime

FINISHED_RUN_STATES = frozenset({"success", "failed"})
#: Errors that would end every other DAG of the batch the same way: the batch stops at the first.
BATCH_STOPPING_ERRORS = (StarshipAuthError, StarshipNotInstalledError, StarshipTLSError, StarshipTransportError)
#: The label of a history task in the UI: the DAG ids of its batch.
MAP_INDEX_TEMPLATE = "{{ task.source_dags | map(attribute='dag_id') | join(', ') | truncate(200, true) }}"


def classify_runs(runs: Iterable[dict[str, Any]], selection: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``("pending", position, run)`` for each unfinished run, ``("selected", position, run)`` for
    each finished run the selection (``since``, ``runs_limit``) keeps; positions count every run."""
    since = parse_datetime(selection["since"]) if selection.get("since") else None
    limit = int(selection.get("runs_limit") or 0)
    kept = 0
    for position, run in enumerate(runs):
        if run.get("state") not in FINISHED_RUN_STATES:
            yield "pending", position, run
            continue
        when = parse_datetime(run.get("logical_date") or run.get("execution_date") or run.get("run_after"))
        if since and (when is None or when < since):
            continue
        if limit and kept >= limit:
            continue
        kept += 1
        yield "selected", position, run


class BatchOperator(MigrationOperator):
    """The history of a batch of DAGs, one after another: ``source_dags`` is one batch of ``start``'s
    list. :meth:`start_dag` makes a DAG the current one; :meth:`migrate` (of the subclass) works on it.

    :param earlier: task ids of the DAG's copy tasks before this one; ``later``: those after it (the
        last copy task that runs stores the DAG's sync marker, see :meth:`store_marker`).
    """

    template_fields = (*MigrationOperator.template_fields, "source_dags", "runs_limit", "since")

    def __init__(self, *, source_dags: Any, runs_limit: Any = 0, since: Any = None, earlier: Iterable[str] = (),
                 later: Iterable[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", MAP_INDEX_TEMPLATE)
        super().__init__(**kwargs)
        self.source_dags = source_dags
        self.runs_limit = runs_limit
        self.since = since
        self.earlier = list(earlier)
        self.later = list(later)
        self.source_dag: dict[str, Any] = {}  # the DAG being copied
        self.plan: DagPlan | None = None

    def execute(self, context: Any) -> Any:
        self.begin()
        summaries: list[dict[str, Any]] = []
        batch = list(self.source_dags or [])
        if batch:  # the versions ``start`` read: no version request here
            self.target_hook.known_version(batch[0].get("target_version"))
            self.source_hook.known_version(batch[0].get("source_version"))
        try:
            for position, spec in enumerate(batch):
                if not self.start_dag(spec):
                    continue
                self.last_summary = None
                try:
                    summary, error = self.summarized(context)
                finally:  # a DAG stopped by a kill or a timeout still shows what it did
                    if self.last_summary is not None:
                        summaries.append(self.last_summary)
                self.dag_done(summary, error)
                if error is None:
                    continue
                self.log.error("%s: %s failed", spec["dag_id"], self.resource, exc_info=error)
                if isinstance(error, BATCH_STOPPING_ERRORS) and position + 1 < len(batch):
                    # the same error awaits every other DAG: they are left for the next run
                    rest = [d["dag_id"] for d in batch[position + 1:]]
                    self.log.error("Stopping: %s not done (%s)", ", ".join(rest), type(error).__name__)
                    break
        finally:  # also when the task is killed or times out: the report shows what was done
            self.finish_batch(context, summaries)
        self.raise_if_failed(summaries)

    def start_dag(self, spec: dict[str, Any]) -> bool:
        """Make ``spec`` the DAG being copied; False: this task has nothing to do for it."""
        self.source_dag = spec
        return True

    def dag_done(self, summary: dict[str, Any], error: Exception | None) -> None:
        """After one DAG of the batch."""

    def finish_batch(self, context: Any, summaries: list[dict[str, Any]]) -> None:
        context["ti"].xcom_push(key="summary", value=summaries)

    @property
    def dag_to_migrate(self) -> str:
        return self.source_dag["dag_id"]

    def summary_dag_id(self) -> str | None:
        return self.source_dag.get("dag_id") if isinstance(self.source_dag, dict) else None

    def selection(self) -> dict[str, Any]:
        limit = int(self.runs_limit or 0)
        since = parse_datetime(self.since) if self.since not in (None, "") else None
        return {"runs_limit": limit, "since": since.isoformat() if since else None}

    @property
    def majors(self) -> tuple[int, int]:
        known = self.plan.source_major if self.plan else None  # the plan spares later tasks a version request
        return int(known or self.source_hook.airflow_major), self.target_hook.airflow_major

    def ti_page_estimate(self) -> tuple[int, int] | None:
        """``(rows, runs)`` for sizing the first page of the DAG's task instances: what ``start`` read
        off its newest runs (those the first page begins with), when it did."""
        per_run = self.source_dag.get("tasks_per_run") if isinstance(self.source_dag, dict) else None
        return (round(float(per_run) * PROBE_RUNS), PROBE_RUNS) if per_run else None

    def store_marker(self, summary: Summary, context: Any) -> None:
        """Store the DAG's sync marker if this is its last copy task to run and all of them went well.

        The last copy task that runs (the plan skips the others) stores the marker, when every copy
        task finished cleanly: a later sync then finds the DAG unchanged with one request."""
        plan = self.plan
        if plan is None or not plan.marker or summary.dry_run or any(s.failed for s in (summary, *self.parts)):
            return
        if not all(plan.skips(task_id) for task_id in self.later):
            return  # a later copy task runs and stores it
        ti = context["ti"]
        for task_id in self.earlier:
            if plan.skips(task_id):  # dag_runs found nothing for it to do
                continue
            found = summaries_by_dag(ti.xcom_pull(task_ids=task_id, key="summary", map_indexes=ti.map_index)).get(
                self.dag_to_migrate)
            if found is None or failed_total(found):
                self.log.info("Not storing the sync marker: %s did not finish cleanly", task_id)
                return
        sync_state.write_marker(self.target_hook, self.dag_to_migrate, plan.marker)


class PlannedOperator(BatchOperator):
    """A history task after ``dag_runs``, working from its plans (``plans``: that task's return value).
    A DAG whose plan skips this task is left out (it has no summary).

    Runs even when an upstream task of the batch failed: a refused run must not keep the other
    runs' XComs or logs out, and counts are most useful after a failure.
    """

    template_fields = (*BatchOperator.template_fields, "plans")

    def __init__(self, *, plans: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plans = plans

    @cached_property
    def plans_by_dag(self) -> dict[str, DagPlan]:
        return plans_by_dag(self.plans)  # read once the template is rendered, at the first DAG

    def start_dag(self, spec: dict[str, Any]) -> bool:
        self.source_dag = spec
        self.plan = self.plans_by_dag.get(spec["dag_id"])  # None: dag_runs did not get to this DAG
        if self.plan is not None and self.plan.skips(self.task_id):
            self.log.info("%s: nothing to do", spec["dag_id"])
            return False
        return True


__all__ = ["BatchOperator", "PlannedOperator", "classify_runs"]
