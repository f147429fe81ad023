"""The report task: every summary gathered, what is missing named, the table."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from airflow.exceptions import AirflowException

from starship_dags.operators.report import MigrationReportOperator
from starship_dags.report import Summary, format_table


class LazySequence(Sequence):
    """Stands for Airflow's LazyXComSelectSequence: a sequence, but not a list."""

    def __init__(self, values):
        self._values = list(values)

    def __getitem__(self, index):
        return self._values[index]

    def __len__(self):
        return len(self._values)


class FakeTI:
    def __init__(self, xcoms):
        self.xcoms = xcoms
        self.pushed = {}

    def xcom_pull(self, task_ids, key="return_value", map_indexes=None):
        value = self.xcoms.get((task_ids, key))
        if isinstance(map_indexes, int) and isinstance(value, list):
            return value[map_indexes] if map_indexes < len(value) else None
        if map_indexes is not None and isinstance(value, list):
            # like Airflow: a lazy sequence (not a list) of only the indexes with a value
            return LazySequence(value[i] for i in map_indexes if i < len(value) and value[i] is not None)
        return value

    def xcom_push(self, key, value):
        self.pushed[key] = value


def summary(resource, dag_id=None, **counts):
    return Summary(resource=resource, dag_id=dag_id, **counts).as_dict()


def report(expected, xcoms):
    op = MigrationReportOperator(task_id="report", expected=expected, mapped={"h.runs": "discover"})
    ti = FakeTI(xcoms)
    return op, ti


def test_all_summaries_gathered():
    op, ti = report(
        {"pools": True, "h.runs": True},
        {("pools", "summary"): summary("pools", created=2),
         # two history tasks: a and c, then b
         ("discover", "return_value"): [[{"dag_id": "a"}, {"dag_id": "c"}], [{"dag_id": "b"}]],
         ("h.runs", "summary"): [[summary("dag_runs", "a", created=3), summary("dag_runs", "c")],
                                 [summary("dag_runs", "b", unchanged=4)]]},
    )
    result = op.execute({"ti": ti})
    assert result["failed"] == 0 and result["missing"] == []
    assert [s["dag_id"] for s in result["summaries"]] == [None, "a", "c", "b"]


def test_a_mapped_task_without_summary_fails_the_report():
    op, ti = report(
        {"h.runs": True},
        {("discover", "return_value"): [[{"dag_id": "a"}, {"dag_id": "b"}], [{"dag_id": "c"}]],
         ("h.runs", "summary"): [[summary("dag_runs", "a")], [summary("dag_runs", "c")]]},  # b's batch stopped
    )
    with pytest.raises(AirflowException, match=r"no summary from h.runs\[b\]"):
        op.execute({"ti": ti})


def test_a_failed_discovery_fails_the_report():
    op, ti = report({"h.runs": True}, {})
    with pytest.raises(AirflowException, match="no summary from discover"):
        op.execute({"ti": ti})


def test_item_failures_fail_the_report_and_disabled_tasks_are_ignored():
    failed = Summary(resource="variables")
    failed.add("failed", "variable 'x'", "HTTP 500")
    op, ti = report({"variables": True, "pools": False}, {("variables", "summary"): failed.as_dict()})
    with pytest.raises(AirflowException, match="1 item"):
        op.execute({"ti": ti})
    assert "variable 'x': HTTP 500" in ti.pushed["report"]["table"]


def test_a_task_its_dag_runs_task_skipped_as_idle_is_not_missing():
    """dag_runs skips a DAG's later tasks when it has nothing for them; those leave no summary.
    Summaries are matched by DAG id: Airflow 2 returns only the map indexes that have one."""
    op = MigrationReportOperator(task_id="report", expected={"h.runs": True, "h.tis": True},
                                 mapped={"h.runs": "discover", "h.tis": "discover"}, planned_by={"h.tis": "h.runs"})
    xcoms = {("discover", "return_value"): [[{"dag_id": "a"}], [{"dag_id": "b"}, {"dag_id": "c"}]],
             ("h.runs", "summary"): [[summary("dag_runs", "a")], [summary("dag_runs", "b"), summary("dag_runs", "c")]],
             ("h.runs", "return_value"): [
                 {"plans": {"a": {"dag_id": "a", "idle": True, "skipped_tasks": ["h.tis"]}}, "skipped_tasks": ["h.tis"]},
                 {"plans": {"b": {"dag_id": "b", "idle": False, "skipped_tasks": []},
                            "c": {"dag_id": "c", "idle": True, "skipped_tasks": ["h.tis"]}}, "skipped_tasks": []}],
             # the first batch's task was skipped (no summary); the second ran for b only
             ("h.tis", "summary"): [None, [summary("task_instances", "b", created=5)]]}
    result = op.execute({"ti": FakeTI(xcoms)})
    assert result["missing"] == [] and [s["dag_id"] for s in result["summaries"]] == ["a", "b", "c", "b"]
    # the same gap where dag_runs did not skip it: the task crashed, and the report says so
    xcoms[("h.tis", "summary")] = [[summary("task_instances", "a")], None]
    with pytest.raises(AirflowException, match=r"no summary from h.tis\[b\]"):
        op.execute({"ti": FakeTI(xcoms)})


def test_the_parts_of_a_summary_are_reported_as_resources_of_their_own():
    tries = Summary(resource="task_instance_history", dag_id="a")
    tries.add("failed", "try 't/2'", "HTTP 409")
    tis = Summary(resource="task_instances", dag_id="a", created=5, parts=[tries.as_dict()]).as_dict()
    op, ti = report({"h.runs": True}, {("discover", "return_value"): [[{"dag_id": "a"}]], ("h.runs", "summary"): [[tis]]})
    with pytest.raises(AirflowException, match="1 item"):  # the part's failure fails the report
        op.execute({"ti": ti})
    rows = ti.pushed["report"]["summaries"]
    assert [(s["resource"], s["created"], s["failed"]) for s in rows] == [
        ("task_instances", 5, 0), ("task_instance_history", 0, 1)]
    assert "task_instance_history/a: try 't/2': HTTP 409" in ti.pushed["report"]["table"]


def test_report_table_lists_failures_by_name():
    s = Summary(resource="variables")
    s.add("created", "variable 'a'")
    s.add("failed", "variable 'b'", "HTTP 500")
    table = format_table([s])
    assert "variables" in table.splitlines()[2] and "variable 'b': HTTP 500" in table
