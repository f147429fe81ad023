"""The report task: collects every migration task's summary, logs one table, fails on any failure."""

from __future__ import annotations

from typing import Any

from starship_dags.compat import AirflowException, BaseOperator
from starship_dags.operators.base import as_bool
from starship_dags.operators.environment import RESOURCE as ENVIRONMENT
from starship_dags.operators.guard import refused_reason, stood_aside
from starship_dags.plan import batch_specs, plans_by_dag
from starship_dags.report import Summary, expand, format_table, summaries_by_dag


class MigrationReportOperator(BaseOperator):
    """Runs whatever happened upstream (``trigger_rule=all_done``).

    :param expected: task id -> whether that task was meant to run (templated; a task that was
        meant to run and left no summary crashed before it could report).
    :param mapped: mapped task id -> the task whose list of batches of DAGs it is mapped over.
    :param planned_by: mapped task id -> the task of the same DAG that may skip it as having
        nothing to do (see :meth:`~starship_dags.plan.DagPlan.skips`).
    """

    template_fields = ("expected",)
    ui_color = "#fdf6e3"

    def __init__(
        self, *, expected: dict[str, Any], mapped: dict[str, str] | None = None,
        planned_by: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.expected = expected
        self.mapped = mapped or {}
        self.planned_by = planned_by or {}

    @staticmethod
    def _pulled(ti: Any, task_id: str, key: str, count: int) -> Any:
        """What a mapped history task pushed under ``key`` in every map index."""
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=list(range(count))) if count else []

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        guarded = stood_aside(self, context)
        if guarded:  # the whole run stood aside for another migration run
            self.log.info("Nothing migrated in this run: %s", guarded)
            return {"summaries": [], "missing": [], "failed": 0, "table": "", "skipped": guarded}
        summaries: list[Summary] = []
        missing: list[str] = []
        plans: dict[str, dict[str, Any]] = {}  # per planning task: DAG id -> its DagPlan
        for task_id, enabled in self.expected.items():
            if not as_bool(enabled):
                continue
            if task_id in self.mapped:  # one summary per element of the list it was mapped over
                over = ti.xcom_pull(task_ids=self.mapped[task_id])
                if over is None:  # the task that lists them failed
                    if self.mapped[task_id] not in missing:
                        missing.append(self.mapped[task_id])
                    continue
                # Matched by DAG id: Airflow 2 leaves out the map indexes without a value, so
                # positions in what it returns are not map indexes.
                found = summaries_by_dag(self._pulled(ti, task_id, "summary", len(over)))
                planner = self.planned_by.get(task_id)
                if planner and planner not in plans:
                    plans[planner] = plans_by_dag(self._pulled(ti, planner, "return_value", len(over)))
                for index, spec in batch_specs(over):
                    dag_id = spec.get("dag_id") if isinstance(spec, dict) else None
                    if dag_id in found:
                        summaries += [Summary.from_dict(s) for s in expand(found[dag_id])]
                    elif not (planner and dag_id in plans[planner] and plans[planner][dag_id].skips(task_id)):
                        missing.append(f"{task_id}[{index if dag_id is None else dag_id}]")
            else:
                value = ti.xcom_pull(task_ids=task_id, key="summary")
                if isinstance(value, dict):
                    summaries += [Summary.from_dict(s) for s in expand(value)]
                else:
                    missing.append(task_id)
        table = format_table(summaries)
        self.log.info("Migration report:\n%s", table)
        failed = sum(s.failed for s in summaries)
        report = {
            "summaries": [s.as_dict() for s in summaries],
            "missing": missing,
            "failed": failed,
            "table": table,
            # names only: connections and variables the source defines in its environment
            "environment_only": [n for s in summaries if s.resource == ENVIRONMENT for n in s.skipped_items],
        }
        if missing:
            self.log.error(
                "No summary from %s: these tasks did not run (an upstream task failed) or were killed",
                ", ".join(missing),
            )
        refused = refused_reason(self, context)
        if refused:
            report["refused"] = refused
            self.log.error("The run refused to start: %s", refused)
        if failed or missing:
            ti.xcom_push(key="report", value=report)
            raise AirflowException(
                f"migration incomplete: {failed} item(s) failed"
                + (f"; no summary from {', '.join(missing)}" if missing else "")
                + (f"; {refused}" if refused else "")
            )
        return report
