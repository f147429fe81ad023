"""Task instances and their retry history: the rows of the runs a DAG's plan names, that the target lacks.

Part of the ``dag_runs`` task (one task, one process start on the target's executor): after the
runs, :func:`copy_children` copies the task instances, then the retry history (Airflow ties a
history row to its task instance, so it goes second). Each is a part of the task's summary, which
the report shows as a row of its own.

The source is read in pages of runs to the plan's depth, and on while a run that must have rows has
not shown up (ties in start dates move runs between pages). Only the runs that were on the target
before are looked up there: those written just now cannot have rows yet. Rows go in full request
bodies: the last, partly filled body of a page waits for the next page's rows.
"""

from __future__ import annotations

from typing import Any

from starship_dags.hooks.paging import RunPager, run_pages
from starship_dags.operators import rows as history_rows
from starship_dags.plan import DagPlan
from starship_dags.report import Summary
from starship_dags.translate import HISTORY, TASK_INSTANCE, history_natural_key, ti_natural_key, translate


def copy_children(op: Any, summary: Summary, context: Any) -> None:
    """The task instances, then the retry history, of the runs ``op.plan`` names (``op``: the
    ``dag_runs`` task, on its current DAG); then the DAG's sync marker, when all went well."""
    plan, dag_id = op.plan, op.dag_to_migrate
    needed, refused = set(plan.run_ids), set(plan.refused_run_ids)
    retried: set[str] = set()  # runs with a task instance past its first try: only they have history
    tries_read = None  # (earlier tries of the task instances read, runs read): about as many history rows
    with op.part(history_rows.RESOURCES[TASK_INSTANCE]) as part:
        if needed or refused:
            tries_read = ChildCopy(op, part, TASK_INSTANCE, expected=needed, retried=retried).run(op.ti_page_estimate())
    with op.part(history_rows.RESOURCES[HISTORY]) as part:
        if needed or refused:
            ChildCopy(op, part, HISTORY, expected=retried & needed).run(tries_read)
    if op.parts[-1].created and not summary.dry_run and op.target_hook.airflow_major >= 3:
        fill_dag_versions(op.target_hook, dag_id)
    op.store_marker(summary, context)


class ChildCopy:
    """One copy of task instances (or of retry history) of the DAG ``op`` works on.

    :param expected: runs sure to have rows of this kind: the source is read on until each showed up.
    :param retried: collects the runs with a task instance past its first try (task instances only).
    """

    def __init__(self, op: Any, summary: Summary, kind: str, *, expected: set[str],
                 retried: set[str] | None = None) -> None:
        self.op, self.summary, self.kind = op, summary, kind
        self.plan: DagPlan = op.plan
        self.expected, self.retried = expected, retried
        self.natural_key = ti_natural_key if kind == TASK_INSTANCE else history_natural_key

    def run(self, estimate: tuple[int, int] | None) -> tuple[int, int]:
        """Copy; ``estimate`` (about how many rows how many runs hold) sizes the first page. Returns
        the earlier tries of every row read (past its first) and the runs read: about as many
        retry-history rows are in those runs."""
        op, plan, dag_id = self.op, self.plan, self.op.dag_to_migrate
        needed, refused = set(plan.run_ids), set(plan.refused_run_ids)
        on_target = self._on_target(needed & set(plan.existing_run_ids))
        # A set that only shrinks, of the plan's own run id strings, keeps memory small.
        open_runs = needed | refused
        unseen = [len(self.expected)]  # runs of ``expected`` not met yet
        depth, planned_total = plan.scan_runs, plan.source_total
        earlier_tries = [0]
        without_run: dict[str, int] = {}
        held: list[dict[str, Any]] = []  # rows read but not written yet (the last body of a page)
        pager = RunPager(estimate, depth)

        def more(offset: int, total: int) -> bool:
            # runs that started since the plan push the ones we need further down
            deeper = depth + max(0, total - planned_total)
            return offset < deeper or (unseen[0] > 0 and offset < total)

        def count_tries(row: dict[str, Any]) -> None:
            earlier_tries[0] += max(int(row.get("try_number") or 0) - 1, 0)

        if not more(0, planned_total):
            return 0, 0
        total = planned_total
        for page in run_pages(lambda d, **at: history_rows.source_page(op.source_hook, self.kind, d, **at), dag_id,
                              "task_instances", self.natural_key, pager, more=more, wanted=open_runs,
                              every_row=count_tries):
            total = page.total
            missing = []
            for row in page.rows:
                run_id = row["run_id"]
                if run_id in refused:
                    without_run[run_id] = without_run.get(run_id, 0) + 1
                    continue
                if self.retried is not None and int(row.get("try_number") or 0) > 1:
                    self.retried.add(run_id)
                if self.natural_key(row) in on_target:
                    self.summary.unchanged += 1
                else:
                    missing.append(row)
            open_runs -= page.runs
            unseen[0] -= sum(1 for run_id in page.runs if run_id in self.expected)
            held = history_rows.write(op, self.summary, self.kind, held + missing, hold_tail=True)
            op.log.info("%s %s: read %d of %d runs (planned depth %d); %d written so far", dag_id,
                        history_rows.RESOURCES[self.kind], min(page.offset, total), total,
                        depth + max(0, total - planned_total), self.summary.created)
            missing = None
        history_rows.write(op, self.summary, self.kind, held)
        for run_id, count in sorted(without_run.items()):
            self.summary.add("skipped", f"{count} row(s) of run {run_id!r}",
                             "the run is not on the target (see the dag_runs failures)", count=count)
        return earlier_tries[0], min(pager.offset, max(total, 1))

    def _on_target(self, runs: set[str]) -> set[tuple]:
        """The keys the target has of these runs (those that were on it before this task)."""
        if not runs:
            return set()
        return history_rows.keys_of_runs(history_rows.target_rows(self.op.target_hook, self.kind, self.op.dag_to_migrate),
                                         self.kind, runs)


def fill_dag_versions(target: Any, dag_id: str) -> None:
    """Airflow 3's Starship fills missing DAG versions after each task-instance POST, but history
    posted afterwards stays without one: re-send one existing task instance (a no-op insert)."""
    page = target.get_task_instances(dag_id, limit=1, offset=0)
    found = page.get("task_instances") or []
    if found:
        target.create_task_instances([translate(TASK_INSTANCE, found[0], 3, 3)])
