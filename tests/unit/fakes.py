"""Fakes the unit tests share: a task instance that records its pushes, and a task instance row."""

from __future__ import annotations

from typing import Any

from starship_dags.operators.dag_runs import DagRunsMigrationOperator
from starship_dags.plan import DagPlan


class Ti:
    """What a task's context holds as ``ti``: records ``xcom_push``."""

    map_index = 2

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def ti_row(run_id: str, task_id: str = "t", try_number: int | None = None, map_index: int = -1) -> dict[str, Any]:
    """A task instance as Starship serves it, of DAG ``d``."""
    row = {"dag_id": "d", "run_id": run_id, "task_id": task_id, "map_index": map_index, "state": "success"}
    return row if try_number is None else {**row, "try_number": try_number}


def context(xcoms=None):
    """``xcoms``: (task id, key) or (task id, key, map index) -> value."""
    xcoms = xcoms or {}

    class TI:
        def __init__(self):
            self.pushed = {}

        def xcom_pull(self, task_ids=None, key="return_value", map_indexes=None):
            if map_indexes is not None:
                return xcoms.get((task_ids, key, map_indexes))
            return xcoms.get((task_ids, key))

        def xcom_push(self, key, value):
            self.pushed[key] = value

    class Dag:
        dag_id = "starship_migration"

    return {"ti": TI(), "dag": Dag()}


def batch_task(outcomes):
    """dag_runs over DAGs a, b, c with its comparison replaced: per DAG, ``outcomes`` says what happens
    ("idle", "work": runs to copy XComs for, "fail": a refused run, or an exception to raise)."""
    op = DagRunsMigrationOperator(
        task_id="dag_runs", source_dags=[{"dag_id": d} for d in outcomes], artifacts=["xcoms"],
        children={"h.xcoms": True, "h.validate": True}, artifact_children=["h.xcoms"],
    )
    done = []

    def migrate(summary, context):
        dag_id = op.dag_to_migrate
        done.append(dag_id)
        outcome = outcomes[dag_id]
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "fail":
            summary.add("failed", "run 'r'", "refused")
        if outcome in ("work", "fail"):
            op.plan = DagPlan(dag_id, idle=False, artifact_run_ids=["r"])
        summary.created = 1

    op.migrate = migrate
    return op, done
