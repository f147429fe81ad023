"""``dag_runs``: per DAG of its batch, the runs, then their task instances and retry history.

1. It reads the newest page of the source's runs. If the DAG's sync marker
   (:mod:`starship_dags.sync_state`) says nothing changed, the DAG is done: one source request.
2. Otherwise it deletes the marker, compares every source run with the target by run id, writes
   the missing finished runs, and makes the DAG's plan (:class:`~starship_dags.plan.DagPlan`): which
   runs need their task instances and history checked, how deep to read, which runs' XComs and
   logs the later tasks copy.
3. It copies the task instances and retry history of those runs
   (:mod:`~starship_dags.operators.task_instances`).

Queued and running runs are skipped and counted; the next run picks them up. Memory stays small
however long the history: per run only its id and position are kept, and new runs are written as
they are read. When the task succeeds it marks the later tasks that no DAG of its batch needs as
skipped before they start (each started task costs the target a process and a scheduling round).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from starship_dags import sync_state
from starship_dags.operators import rows
from starship_dags.operators.base import as_bool, as_name_list
from starship_dags.operators.batch import BatchOperator, classify_runs
from starship_dags.operators.skipping import skip_downstream
from starship_dags.operators.task_instances import copy_children
from starship_dags.plan import DagPlan, batch_plan
from starship_dags.report import Summary, failed_total
from starship_dags.translate import DAG_RUN, parse_datetime


class DagRunsMigrationOperator(BatchOperator):
    """A DAG's runs, then the task instances and retry history of the runs that need them.

    The task instances and the retry history are parts of this task's summary (the report shows
    them as rows of their own): one task, one process start on the target's executor.

    :param artifacts: which of ``xcoms``/``task_logs`` the DAG's later tasks copy; part of the
        selection stored in the sync marker, so selecting one more re-examines every run once.
    :param children: task id -> whether it is meant to run, for each later task of the DAG (all
        direct downstream of this one). When this task succeeds, it skips those not meant to run,
        the ``artifact_children`` (XComs, logs) when no run needs them, and all of them when the
        DAG is unchanged, so the scheduler does not start a task only for it to find nothing to
        do. The plan names them (``skipped_tasks``). After a failure every later task runs.
    """

    resource = "dag_runs"
    template_fields = (*BatchOperator.template_fields, "artifacts", "children")

    def __init__(self, *, artifacts: Any = (), children: dict[str, Any] | None = None,
                 artifact_children: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifacts = artifacts
        self.children = dict(children or {})
        self.artifact_children = frozenset(artifact_children)  # the XCom and log tasks among them

    def selection(self) -> dict[str, Any]:
        return {**super().selection(), "artifacts": sorted(as_name_list(self.artifacts))}

    def execute(self, context: Any) -> None:
        self.done_plans: dict[str, DagPlan] = {}
        super().execute(context)  # fails when a DAG had a failure: then every later task runs
        skipped = self.pushed_plan["skipped_tasks"]
        if skipped:
            self.log.info("Nothing to do for %s; skipped", ", ".join(skipped))
        skip_downstream(context, skipped)  # on Airflow 3 this ends the task (successfully)

    def start_dag(self, spec: dict[str, Any]) -> bool:
        self.source_dag = spec
        self.plan = DagPlan(spec["dag_id"])
        return True

    def dag_done(self, summary: dict[str, Any], error: Exception | None) -> None:
        if error is not None or failed_total(summary):
            # the later tasks copy the XComs and logs of the runs that went in, and count
            self.plan.skipped_tasks = None
        elif self.plan.skipped_tasks is None:
            self.plan.skipped_tasks = self.idle_children()
        self.done_plans[self.dag_to_migrate] = self.plan

    def batch_plan(self) -> dict[str, Any]:
        """Every DAG's plan, and the later tasks that have nothing to do for any DAG of the batch."""
        plans = dict(self.done_plans)
        current = self.source_dag.get("dag_id")
        if current is not None and current not in plans and self.plan:  # stopped inside a DAG (killed, timed out)
            self.plan.skipped_tasks = None
            plans[current] = self.plan
        return batch_plan(plans)

    def finish_batch(self, context: Any, summaries: list[dict[str, Any]]) -> None:
        super().finish_batch(context, summaries)
        self.pushed_plan = self.batch_plan()
        context["ti"].xcom_push(key="return_value", value=self.pushed_plan)

    def idle_children(self) -> list[str]:
        """The later tasks of this DAG that have nothing to do, by the plan just made."""
        idle = []
        for task_id, meant in self.children.items():
            if (not as_bool(meant) or self.plan.idle
                    or (task_id in self.artifact_children and not self.plan.artifact_run_ids)):
                idle.append(task_id)
        return sorted(idle)

    def migrate(self, summary: Summary, context: Any) -> None:
        dag_id = self.dag_to_migrate
        if self.source_dag.get("problem"):
            summary.add("failed", f"DAG {dag_id!r}", self.source_dag["problem"])
            return
        if self.copy_runs(summary):
            # after copy_runs returned: what it held per run (the comparison) is freed by now
            copy_children(self, summary, context)

    def copy_runs(self, summary: Summary) -> bool:
        """Compare the DAG's runs, write the missing finished ones and make the plan; False when the
        marker shows the DAG unchanged (nothing more to do)."""
        dag_id = self.dag_to_migrate
        source, target = self.source_hook, self.target_hook
        first = source.get_dag_runs(dag_id, limit=rows.RUN_PAGE, offset=0)
        total = int(first.get("dag_run_count") or 0)
        source_url = source.url_from_endpoint("")
        digest = sync_state.page_digest(first.get("dag_runs") or [])
        selection = self.selection()
        marker = self.source_dag.get("marker")
        if sync_state.unchanged(marker, source_url=source_url, run_count=total, digest=digest, selection=selection):
            summary.unchanged = total - len(marker.get("pending", []))
            summary.notes.append("unchanged since the last sync")
            self.log.info("%s: unchanged since the last sync (%d runs); nothing to do", dag_id, total)
            return False
        if (marker or self.source_dag.get("marker_stored")) and not summary.dry_run:
            sync_state.delete_marker(target, dag_id)

        # Only what the comparison needs is kept per run, and new runs are written as they come,
        # so memory stays small however long the history is.
        target_ids: set[str] = set()
        target_by_date: dict[Any, str] = {}
        for run in rows.target_rows(target, DAG_RUN, dag_id):
            target_ids.add(run["run_id"])
            when = parse_datetime(run.get("logical_date") or run.get("execution_date"))
            if when is not None:
                target_by_date[when] = run["run_id"]

        # Per selected run: its id, and its position on the source (runs not selected count too).
        # An array and a list of the rows' own id strings, not a tuple per run: 16 bytes a run.
        selected: list[str] = []
        positions = array("l")
        pending: list[str] = []
        created = 0  # runs sent to the target (the ones it refused are named in the summary)
        clashes: set[str] = set()
        batch: list[dict[str, Any]] = []
        cutoff: tuple[Any, str] | None = None
        for kind, position, run in classify_runs(source.iter_dag_runs(dag_id, page_size=rows.RUN_PAGE, first=first), selection):
            run_id = run["run_id"]
            if kind == "pending":
                summary.add("skipped", f"run {run_id!r}", f"{run.get('state')}: picked up by a later run")
                pending.append(run_id)
                continue
            selected.append(run_id)
            positions.append(position)
            ended = parse_datetime(run.get("end_date")) if run.get("end_date") else None
            if ended is not None and (cutoff is None or ended > cutoff[0]):
                cutoff = (ended, str(run["end_date"]))
            if run_id in target_ids:
                continue
            when = parse_datetime(run.get("logical_date") or run.get("execution_date"))
            other = target_by_date.get(when) if when is not None else None
            if other is not None and other != run_id:
                clashes.add(run_id)
                summary.add("failed", f"run {run_id!r}", f"its logical date {when.isoformat()} is taken on the target by run {other!r}")
                continue
            batch.append(run)
            created += 1
            if len(batch) >= rows.WRITE_BATCH_RUNS:
                batch = rows.write(self, summary, DAG_RUN, batch, hold_tail=True)
        rows.write(self, summary, DAG_RUN, batch)
        summary.unchanged += len(selected) - created - len(clashes)
        refused = {f["item"] for f in summary.failures}
        # XComs and logs: runs written now or earlier pending, unless the marker does not prove that
        # the earlier runs got them (no marker, or a kind selected that the last sync did not copy).
        covered = set((marker or {}).get("selection", {}).get("artifacts") or [])
        artifacts_of_needed = marker is not None and covered >= set(selection["artifacts"])
        earlier_pending = set(marker.get("pending", [])) if marker is not None else set()
        needed: list[str] = []  # runs whose task instances and history are checked
        present: list[str] = []  # runs on the target now
        missing_runs: list[str] = []  # runs the target refused: the children name their rows
        deepest = -1  # the position of the last run the children need (positions only grow)
        for position, run_id in zip(positions, selected):
            if run_id not in target_ids and (run_id in clashes or f"run {run_id!r}" in refused):
                missing_runs.append(run_id)
                deepest = position
                continue
            present.append(run_id)
            # with no marker there is no proof of a complete earlier sync: every run is checked;
            # else the runs written now (those not on the target before) and those pending before
            if marker is None or run_id not in target_ids or run_id in earlier_pending:
                needed.append(run_id)
                deepest = position
        artifact_runs = (needed if artifacts_of_needed else present) if selection["artifacts"] else []
        self.plan = DagPlan(
            dag_id,
            idle=False,
            run_ids=needed,
            # of those, the runs that were on the target before this task: only their task instances
            # and history can be there already, so only they are looked up on the target
            existing_run_ids=[run_id for run_id in needed if run_id in target_ids],
            artifact_run_ids=artifact_runs,
            artifact_existing_run_ids=[run_id for run_id in artifact_runs if run_id in target_ids],
            refused_run_ids=missing_runs,
            # how deep the children read the source: everything when there is no marker, else
            # down to the deepest run that needs its children (they read on if one is missing)
            scan_runs=total if marker is None else deepest + 1,
            source_major=source.airflow_major,  # spares the later tasks a version request
            source_total=total,
            # the newest end date among the runs this copy selected: validation leaves out runs that
            # finished later (a live source goes on running while the copy is made)
            source_cutoff=cutoff[1] if cutoff else None,
            marker=sync_state.make_marker(source_url=source_url, run_count=total, digest=digest, pending=pending,
                                          selection=selection),
        )
        self.plan.skipped_tasks = self.idle_children()  # dropped again if this task fails
        self.log.info(
            "%s: %d runs on the source, %d on the target; %d written, %d skipped as unfinished; "
            "task instances to check for %d runs",
            dag_id, total, len(target_ids), created, len(pending), len(needed),
        )
        return True


__all__ = ["DagRunsMigrationOperator"]
