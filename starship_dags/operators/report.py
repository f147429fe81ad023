"""The report task: collects every migration task's summary, logs one table, fails on any failure."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException

from starship_dags.compat import BaseOperator
from starship_dags.operators.base import as_bool
from starship_dags.operators.environment import RESOURCE as ENVIRONMENT
from starship_dags.operators.guard import stood_aside
from starship_dags.operators.history import skipped_by_plan
from starship_dags.report import Summary, format_table


class MigrationReportOperator(BaseOperator):
    """Runs whatever happened upstream (``trigger_rule=all_done``).

    :param expected: task id -> whether that task was meant to run (templated; a task that was
        meant to run and left no summary crashed before it could report).
    :param mapped: mapped task id -> the task whose list it is mapped over.
    :param planned_by: mapped task id -> the task of the same DAG that may skip it as having
        nothing to do (see :func:`~starship_dags.operators.history.skipped_by_plan`).
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

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        guarded = stood_aside(self, context)
        if guarded:  # the whole run stood aside for another migration run
            self.log.info("Nothing migrated in this run: %s", guarded)
            return {"summaries": [], "missing": [], "failed": 0, "table": "", "skipped": guarded}
        summaries: list[Summary] = []
        missing: list[str] = []
        for task_id, enabled in self.expected.items():
            if not as_bool(enabled):
                continue
            if task_id in self.mapped:  # one summary per element of the list it was mapped over
                over = ti.xcom_pull(task_ids=self.mapped[task_id])
                if over is None:  # the task that lists them failed
                    if self.mapped[task_id] not in missing:
                        missing.append(self.mapped[task_id])
                    continue
                labels = [f"{task_id}[{item.get('dag_id', i) if isinstance(item, dict) else i}]" for i, item in enumerate(over)]
                found = ti.xcom_pull(task_ids=task_id, key="summary", map_indexes=list(range(len(over)))) if over else []
                if isinstance(found, dict):
                    found = [found]
            else:
                labels = [task_id]
                found = [ti.xcom_pull(task_ids=task_id, key="summary")]
            found = list(found or [])
            for position, label in enumerate(labels):
                value = found[position] if position < len(found) else None
                if isinstance(value, dict):
                    summaries.append(Summary.from_dict(value))
                elif not (task_id in self.planned_by
                          and skipped_by_plan(ti, self.planned_by[task_id], task_id, position)):
                    missing.append(label)
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
        if failed or missing:
            ti.xcom_push(key="report", value=report)
            raise AirflowException(
                f"migration incomplete: {failed} item(s) failed"
                + (f"; no summary from {', '.join(missing)}" if missing else "")
            )
        return report
