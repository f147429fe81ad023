"""The report task: collects every migration task's summary, logs one table, fails on any failure."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException

from starship_dags.compat import BaseOperator
from starship_dags.operators.base import as_bool
from starship_dags.report import Summary, format_table


class MigrationReportOperator(BaseOperator):
    """Runs whatever happened upstream (``trigger_rule=all_done``).

    :param expected: task id -> whether that task was meant to run (templated; a task that was
        meant to run and left no summary crashed before it could report).
    """

    template_fields = ("expected",)
    ui_color = "#fdf6e3"

    def __init__(self, *, expected: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.expected = expected

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        summaries: list[Summary] = []
        missing: list[str] = []
        for task_id, enabled in self.expected.items():
            if not as_bool(enabled):
                continue
            found = ti.xcom_pull(task_ids=task_id, key="summary")
            if isinstance(found, dict):
                summaries.append(Summary.from_dict(found))
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
        }
        if missing:
            self.log.error("No summary from %s: the task crashed or was killed before reporting", ", ".join(missing))
        if failed or missing:
            ti.xcom_push(key="report", value=report)
            raise AirflowException(
                f"migration incomplete: {failed} item(s) failed"
                + (f"; no summary from {', '.join(missing)}" if missing else "")
            )
        return report
