"""Validation counts both sides again and names what is missing."""

from __future__ import annotations

from starship_dags.operators.validation import HistoryValidationOperator, compare_counts
from starship_dags.plan import DagPlan
from starship_dags.report import Summary


def test_compare_counts_names_what_is_missing():
    summary = Summary(resource="validation")
    assert compare_counts(summary, "runs", ["a", "b"], ["a", "b", "extra"])
    assert not compare_counts(summary, "task instances", [("d", "r", "t", -1), ("d", "r", "t2", 3)], [("d", "r", "t", -1)])
    assert summary.notes == ["runs: source 2, target 2", "task instances: source 2, target 1"]
    assert summary.failures[0]["reason"] == "source 2, target 1; missing: r/t2[3]"


def test_compare_counts_streams_the_target_and_leaves_the_source_set_alone():
    summary = Summary(resource="validation")
    wanted = {"a", "b", "c"}
    # a target key met twice, and one the source does not have, change nothing
    assert not compare_counts(summary, "runs", wanted, iter(["a", "a", "x", "c"]))
    assert wanted == {"a", "b", "c"}
    assert summary.notes == ["runs: source 3, target 2"]
    assert summary.failures[0]["reason"] == "source 3, target 2; missing: 'b'"


def test_validation_leaves_out_runs_that_finished_after_the_copy():

    op = HistoryValidationOperator(task_id="validate", source_dags=[{"dag_id": "d"}], plans=None)
    op.plan = DagPlan("d", idle=False, source_cutoff="2026-01-01T10:00:00+00:00")
    runs = [{"run_id": "late", "end_date": "2026-01-01T10:00:01+00:00"},
            {"run_id": "seen", "end_date": "2026-01-01T10:00:00+00:00"},
            {"run_id": "no_end", "end_date": None}]
    newer = []
    assert [r["run_id"] for r in op._as_copied(runs, newer)] == ["seen", "no_end"]
    assert newer == ["late"]
    op.plan = DagPlan("d", idle=False, source_cutoff=None)  # the copy selected no finished run: every finished one is newer
    newer = []
    assert [r["run_id"] for r in op._as_copied(runs, newer)] == ["no_end"]
