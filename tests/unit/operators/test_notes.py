"""Notes: only those that differ are written; one the target has differently follows the policy."""

from __future__ import annotations

import pytest

from starship_dags.operators.notes import NoteCopier
from starship_dags.report import Summary
from tests.unit.operators.test_artifacts import artifacts_task


def _copy(mocker, source_notes, target_notes, policy="skip", existing=("r1",)):
    """source_notes / target_notes: (runs' notes, task instances' notes)."""
    op, source, target = artifacts_task(mocker, kinds=["notes"], runs=("r1", "r2"), existing=existing)
    op.conflict_policy = policy
    source.run_notes.return_value, source.task_instance_notes.return_value = source_notes
    target.run_notes.return_value, target.task_instance_notes.return_value = target_notes
    summary = Summary(resource="notes", dag_id="d")
    op.run_jobs([NoteCopier(op, summary, op.lock)])
    return summary, source, target


def test_the_notes_of_runs_and_task_instances_are_written_where_the_target_has_none(mocker):
    long = "ü" * 1000
    summary, source, target = _copy(mocker, ({"r1": "re-ran after the outage", "r2": None},
                                             {("r1", "t", -1): long, ("r2", "t", 3): "mapped ✓"}), ({}, {}))
    assert summary.created == 3 and summary.failed == 0
    target.set_run_note.assert_called_once_with("d", "r1", "re-ran after the outage")
    assert sorted(c.args for c in target.set_task_instance_note.call_args_list) == [
        ("d", "r1", "t", -1, long), ("d", "r2", "t", 3, "mapped ✓")]
    # the target is read only for the run it had before (r2 was written by this migration run)
    target.run_notes.assert_called_once_with("d", {"r1"})


@pytest.mark.parametrize("policy, outcome, written", [("skip", "skipped", False), ("overwrite", "updated", True),
                                                      ("fail", "failed", False)])
def test_a_different_note_on_the_target_follows_the_conflict_policy(mocker, policy, outcome, written):
    summary, _, target = _copy(mocker, ({"r1": "the source's"}, {}), ({"r1": "the target's"}, {}), policy=policy)
    assert getattr(summary, outcome) == 1 and summary.total == 1
    assert target.set_run_note.called is written


def test_equal_notes_are_not_written(mocker):
    summary, _, target = _copy(mocker, ({"r1": "same"}, {("r1", "t", -1): "same too"}),
                               ({"r1": "same"}, {("r1", "t", -1): "same too"}))
    assert summary.unchanged == 2 and summary.total == 2
    assert not target.set_run_note.called and not target.set_task_instance_note.called


def test_a_note_gone_from_the_source_is_removed_only_under_overwrite(mocker):
    summary, _, target = _copy(mocker, ({"r1": None}, {}), ({"r1": "old"}, {}), policy="overwrite")
    assert summary.updated == 1
    target.set_run_note.assert_called_once_with("d", "r1", None)
