"""A DAG's plan: what ``dag_runs`` found for one DAG, and what the DAG's later tasks must do.

``dag_runs`` makes a :class:`DagPlan` per DAG of its batch and pushes them all in one XCom
(``{"plans": {dag_id: plan}, "skipped_tasks": [...]}``); the XCom, log and validation tasks, the
cutover and the report read them through :func:`plans_by_dag`, the one reader. What only
``dag_runs`` itself needs (``OWN_FIELDS``) stays out of the XCom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Fields that only dag_runs reads: they are not pushed (a batch's plans travel in one XCom).
OWN_FIELDS = frozenset({"run_ids", "existing_run_ids", "refused_run_ids"})


@dataclass
class DagPlan:
    dag_id: str
    #: Nothing changed since the last complete sync (its marker proves it): nothing to do.
    idle: bool = True
    #: Runs whose task instances and retry history are checked (on the target now).
    run_ids: list[str] = field(default_factory=list)
    #: Of those, the runs that were on the target before: only their rows can be there already.
    existing_run_ids: list[str] = field(default_factory=list)
    #: Runs the target refused: their rows are named as skipped.
    refused_run_ids: list[str] = field(default_factory=list)
    #: Runs whose XComs and logs are copied.
    artifact_run_ids: list[str] = field(default_factory=list)
    #: Of those, the runs that were on the target before this migration run: only theirs can be there.
    artifact_existing_run_ids: list[str] = field(default_factory=list)
    #: How many of the source's runs (newest first) the later reads go through.
    scan_runs: int = 0
    source_major: int | None = None
    #: The DAG's runs on the source when the plan was made.
    source_total: int = 0
    #: The newest end date of the runs the copy selected: validation leaves out runs finished later.
    source_cutoff: str | None = None
    #: The sync marker to store once every copy task of the DAG went well (None: none to store).
    marker: dict[str, Any] | None = None
    #: Later tasks with nothing to do for this DAG (None: not decided; after a failure every one runs).
    skipped_tasks: list[str] | None = None

    def skips(self, task_id: str) -> bool:
        """Whether ``dag_runs`` skipped ``task_id`` for this DAG as having nothing to do: such a task
        leaves no summary for it, and that is complete."""
        return task_id in (self.skipped_tasks or [])

    def pushed(self) -> dict[str, Any]:
        """The plan as the later tasks get it (JSON, without what only dag_runs reads)."""
        return {k: v for k, v in asdict(self).items() if k not in OWN_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DagPlan:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def plans_by_dag(pushed: Any) -> dict[str, DagPlan]:
    """Every DAG's plan in what ``dag_runs`` pushed, from one map index or a sequence of them (Airflow
    returns a lazy sequence, not a list, for several map indexes)."""
    found: dict[str, DagPlan] = {}
    if isinstance(pushed, dict):
        for dag_id, plan in (pushed.get("plans") or {}).items():
            if isinstance(plan, dict):
                found[dag_id] = DagPlan.from_dict({**plan, "dag_id": dag_id})
    elif isinstance(pushed, Iterable) and not isinstance(pushed, (str, bytes)):
        for value in pushed:
            found.update(plans_by_dag(value))
    return found


def batch_plan(plans: dict[str, DagPlan]) -> dict[str, Any]:
    """What ``dag_runs`` pushes: every DAG's plan, and the later tasks that no DAG of the batch needs."""
    common: set[str] | None = None
    for plan in plans.values():
        mine = set(plan.skipped_tasks or [])
        common = mine if common is None else common & mine
    return {"plans": {dag_id: plan.pushed() for dag_id, plan in plans.items()}, "skipped_tasks": sorted(common or [])}


def batch_specs(batches: Any) -> list[tuple[int, dict[str, Any]]]:
    """``(map index, DAG spec)`` for every DAG of ``start``'s list of batches."""
    return [(index, spec) for index, batch in enumerate(batches or []) for spec in batch or []]
