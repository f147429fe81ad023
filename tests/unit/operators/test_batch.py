"""A batch of DAGs per task: one DAG's trouble and the rest, kills, labels, the run selection, the sync marker."""

from __future__ import annotations

import pytest

from starship_dags.compat import AIRFLOW_MAJOR
from starship_dags.exceptions import StarshipAuthError
from starship_dags.operators.batch import classify_runs
from starship_dags.operators.validation import HistoryValidationOperator
from starship_dags.plan import DagPlan
from starship_dags.report import Summary
from tests.unit.fakes import Ti as _Ti
from tests.unit.fakes import batch_task as _batch_task


def test_a_batch_skips_only_what_no_dag_of_it_needs():
    op, done = _batch_task({"a": "idle", "b": "work"})
    ti = _Ti()
    op.execute({"ti": ti})  # nothing skipped (on Airflow 3 a skip would raise DownstreamTasksSkipped)
    assert "skipmixin_key" not in ti.pushed and ti.pushed["return_value"]["skipped_tasks"] == []
    plans = ti.pushed["return_value"]["plans"]
    assert plans["a"]["skipped_tasks"] == ["h.validate", "h.xcoms"] and plans["b"]["skipped_tasks"] == []
    assert [s["dag_id"] for s in ti.pushed["summary"]] == ["a", "b"] == done


def test_a_batch_of_idle_dags_skips_the_later_tasks():
    op, _ = _batch_task({"a": "idle", "b": "idle"})
    ti = _Ti()
    if AIRFLOW_MAJOR >= 3:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        with pytest.raises(DownstreamTasksSkipped) as raised:
            op.execute({"ti": ti})
        assert raised.value.tasks == [("h.validate", 2), ("h.xcoms", 2)]  # this batch's map index only
    else:
        op.execute({"ti": ti})
        assert ti.pushed["skipmixin_key"] == {"skipped": ["h.validate", "h.xcoms"]}


def test_one_dags_failure_does_not_keep_the_others_out():
    op, done = _batch_task({"a": "fail", "b": RuntimeError("boom"), "c": "work"})
    ti = _Ti()
    with pytest.raises(Exception, match="2 item"):  # a's refused run and b's crash
        op.execute({"ti": ti})
    assert done == ["a", "b", "c"]
    summaries = {s["dag_id"]: s for s in ti.pushed["summary"]}
    assert summaries["b"]["failures"] == [{"item": "dag_runs task", "reason": "boom"}]
    assert summaries["c"]["created"] == 1 and summaries["c"]["failed"] == 0
    plans = ti.pushed["return_value"]["plans"]
    # after a failure every later task runs for that DAG; c's plan stands
    assert plans["a"]["skipped_tasks"] is None and plans["b"]["skipped_tasks"] is None
    assert plans["c"]["skipped_tasks"] == [] and ti.pushed["return_value"]["skipped_tasks"] == []


def test_an_error_every_dag_would_meet_stops_the_batch():
    op, done = _batch_task({"a": "work", "b": StarshipAuthError("s", "GET", "/api/starship/dag_runs", 401), "c": "work"})
    ti = _Ti()
    with pytest.raises(Exception, match="1 item"):
        op.execute({"ti": ti})
    assert done == ["a", "b"]  # c is left for the next run: the report names it as missing
    assert [s["dag_id"] for s in ti.pushed["summary"]] == ["a", "b"]


def test_a_later_task_leaves_out_the_dags_whose_plan_skips_it():
    plans = {"plans": {"a": {"dag_id": "a", "idle": True, "skipped_tasks": ["h.validate"]},
                       "b": {"dag_id": "b", "idle": True, "skipped_tasks": []}}}
    op = HistoryValidationOperator(task_id="h.validate", source_dags=[{"dag_id": "a"}, {"dag_id": "b"},
                                                                      {"dag_id": "c"}], plans=plans)
    seen = []
    op.migrate = lambda summary, context: seen.append((op.dag_to_migrate, op.plan))
    ti = _Ti()
    op.execute({"ti": ti})
    # c: dag_runs never got to it (no plan), so it is counted all the same
    assert [(dag_id, plan and plan.skipped_tasks) for dag_id, plan in seen] == [("b", []), ("c", None)]
    assert [s["dag_id"] for s in ti.pushed["summary"]] == ["b", "c"]


class _Killed(BaseException):
    """Like Airflow's timeout and SIGTERM exceptions: not an Exception."""


def test_a_killed_batch_still_pushes_what_it_did():
    op, done = _batch_task({"a": "work", "b": _Killed(), "c": "work"})
    ti = _Ti()
    with pytest.raises(_Killed):
        op.execute({"ti": ti})
    assert done == ["a", "b"]
    assert [s["dag_id"] for s in ti.pushed["summary"]] == ["a", "b"]  # b's summary, as far as it got
    plans = ti.pushed["return_value"]["plans"]
    assert set(plans) == {"a", "b"} and plans["b"]["skipped_tasks"] is None


def test_a_history_task_is_labelled_with_its_dags():
    from types import SimpleNamespace

    import jinja2

    from starship_dags.operators.batch import MAP_INDEX_TEMPLATE

    def label(dag_ids):
        task = SimpleNamespace(source_dags=[{"dag_id": d, "marker": None} for d in dag_ids])
        return jinja2.Environment().from_string(MAP_INDEX_TEMPLATE).render(task=task)

    assert label(["a", "b_c"]) == "a, b_c"
    long = label([f"dag_number_{n}" for n in range(100)])
    assert long.startswith("dag_number_0, dag_number_1, ") and long.endswith("...") and len(long) <= 250


def test_classify_runs_applies_since_and_limit_to_finished_runs_only():
    runs = [{"run_id": "q", "state": "queued"},
            {"run_id": "new", "state": "success", "logical_date": "2026-03-01T00:00:00+00:00"},
            {"run_id": "mid", "state": "failed", "logical_date": "2026-02-01T00:00:00+00:00"},
            {"run_id": "old", "state": "success", "logical_date": "2025-01-01T00:00:00+00:00"}]
    got = [(kind, run["run_id"]) for kind, _, run in classify_runs(runs, {"since": "2026-01-01", "runs_limit": 0})]
    assert got == [("pending", "q"), ("selected", "new"), ("selected", "mid")]
    got = [(kind, run["run_id"]) for kind, _, run in classify_runs(runs, {"since": None, "runs_limit": 1})]
    assert got == [("pending", "q"), ("selected", "new")]


class _Pulls:
    """A task instance whose ``xcom_pull`` answers from {task id: summary}."""

    map_index = 0

    def __init__(self, summaries):
        self.summaries = summaries

    def xcom_pull(self, task_ids, key, map_indexes):
        assert key == "summary" and map_indexes == 0
        return self.summaries.get(task_ids)


# what a history task pushes: its batch's summaries (here DAG "other" before DAG "d")
CLEAN = [{"dag_id": "other", "failed": 1}, {"dag_id": "d", "failed": 0}]


BROKEN = [{"dag_id": "other", "failed": 0},
          {"dag_id": "d", "failed": 0, "parts": [{"resource": "task_instance_history", "failed": 1}]}]


@pytest.mark.parametrize("task, skipped, summaries, own_failure, stored", [
    ("h.dag_runs", ["h.artifacts"], {}, False, True),  # the last copy task that runs
    ("h.dag_runs", [], {}, False, False),  # the artifacts task runs after it and stores it
    ("h.dag_runs", ["h.artifacts"], {}, True, False),  # its own retry history failed
    ("h.artifacts", [], {"h.dag_runs": CLEAN}, False, True),
    ("h.artifacts", [], {}, False, False),  # dag_runs left no summary (killed)
    ("h.artifacts", [], {"h.dag_runs": BROKEN}, False, False),  # a part of dag_runs failed
])
def test_the_last_copy_task_that_runs_stores_the_marker_when_all_went_well(monkeypatch, task, skipped, summaries,
                                                                          own_failure, stored):
    from starship_dags import sync_state
    from starship_dags.operators.artifacts import ArtifactsMigrationOperator
    from starship_dags.operators.dag_runs import DagRunsMigrationOperator

    writes = []
    monkeypatch.setattr(sync_state, "write_marker", lambda hook, dag_id, marker: writes.append((dag_id, marker)))
    chain = ["h.dag_runs", "h.artifacts"]
    position = chain.index(task)
    order = {"earlier": chain[:position], "later": chain[position + 1:]}
    plan = DagPlan("d", marker={"m": 1}, skipped_tasks=skipped)
    if task == "h.dag_runs":
        op = DagRunsMigrationOperator(task_id=task, source_dags=[{"dag_id": "d"}], **order)
    else:
        op = ArtifactsMigrationOperator(task_id=task, source_dags=[{"dag_id": "d"}],
                                        plans={"plans": {"d": plan.pushed()}}, **order)
    op.source_dag, op.plan = {"dag_id": "d"}, plan
    op.__dict__["target_hook"] = None
    summary = Summary(resource="x")
    if own_failure:
        op.parts = [Summary(resource="task_instance_history", failed=1)]
    op.store_marker(summary, {"ti": _Pulls(summaries)})
    assert writes == ([("d", {"m": 1})] if stored else [])
