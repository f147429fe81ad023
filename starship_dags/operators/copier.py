"""What every kind of artifact copier shares: :class:`Copier`, the base of the XCom, log and note
copiers that one ``artifacts`` task runs side by side (see :mod:`~starship_dags.operators.artifacts`),
and the names of a task instance they use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starship_dags.operators.base import resolve_conflict
from starship_dags.operators.batch import PlannedOperator
from starship_dags.operators.rows import source_task_instances
from starship_dags.report import Summary

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

#: Task instance states whose XComs and logs are final.
FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def ti_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    """``(dag_id, run_id, task_id, map_index)``: the arguments of the hook's per-task-instance calls."""
    return row["dag_id"], row["run_id"], row["task_id"], int(row.get("map_index", -1))


def ti_name(row: dict[str, Any]) -> str:
    index = int(row.get("map_index", -1))
    return f"{row['dag_id']}/{row['run_id']}/{row['task_id']}" + (f"[{index}]" if index >= 0 else "")


class Copier:
    """One kind of artifact of the DAG the task ``op`` works on. ``summary`` is the kind's own;
    ``lock`` is the task's, shared by its copiers' threads."""

    resource = "artifact"

    def __init__(self, op: PlannedOperator, summary: Summary, lock: threading.Lock, *, part: bool = False) -> None:
        self.op, self.summary, self.lock = op, summary, lock
        self.part = part  # a part of the task's summary counts its own requests (the rest are the main one's)
        self.log = op.log

    def jobs(self) -> Iterator[dict[str, Any]]:
        """What to copy, one task instance each, as the source's pages come in."""
        raise NotImplementedError

    def prepare(self, first: dict[str, Any]) -> bool:
        """Decide source and target paths once, before the threads start; False: nothing can be copied."""
        return True

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """After the last job (notes that sum up)."""

    def add(self, outcome: str, name: str, reason: str | None = None) -> None:
        with self.lock:
            self.summary.add(outcome, name, reason)

    def must_replace(self, name: str, same: bool, differs: str) -> bool:
        """For an item already on the target: count it (unchanged, skipped, failed) or say it must be
        replaced, by the conflict policy (see ``resolve_conflict``)."""
        outcome, reason = resolve_conflict(self.op.conflict_policy, same, differs)
        if outcome == "replace":
            return True
        self.add(outcome, name, reason)
        return False

    def finished_task_instances(self) -> Iterator[dict[str, Any]]:
        """The source's finished task instances of the planned runs, as its pages come in."""
        op, plan = self.op, self.op.plan
        rows = source_task_instances(op.source_hook, op.dag_to_migrate, set(plan.artifact_run_ids),
                                     estimate=op.ti_page_estimate(), depth=plan.scan_runs, total=plan.source_total)
        return (row for row in rows if row.get("state") in FINISHED_TI_STATES)


__all__ = ["FINISHED_TI_STATES", "Copier", "ti_key", "ti_name"]
