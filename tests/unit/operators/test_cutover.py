"""The cutover: pause once the runs drain, unpause once the target counts the copied runs."""

from __future__ import annotations

import datetime
import json

import pytest

from starship_dags.operators import cutover
from starship_dags.operators.cutover import (
    CutoverPauseOperator,
    CutoverUnpauseOperator,
    next_run,
)
from starship_dags.report import Summary
from tests.unit.fakes import context as _context

UTC = datetime.timezone.utc


class FakeAirflow:
    """Pause states, runs, variables and the REST view of DAGs of one side."""

    def __init__(self, dags=None, runs=None, next_runs=None):
        self.dags = dict(dags or {})  # dag_id -> is_paused
        self.runs = {d: list(r) for d, r in (runs or {}).items()}
        self.next_runs = {d: list(v) for d, v in (next_runs or {}).items()}  # answers in order, last repeats
        self.variables = {}
        self.calls = []

    def get_dags(self):
        return [{"dag_id": d, "is_paused": p} for d, p in self.dags.items()]

    def set_dag_paused(self, dag_id, paused):
        self.calls.append(("pause" if paused else "unpause", dag_id))
        self.dags[dag_id] = paused

    def get_dag_runs(self, dag_id, limit=100, offset=0):
        runs = self.runs.get(dag_id, [])
        return {"dag_runs": runs[offset:offset + limit], "dag_run_count": len(runs)}

    def get_variables(self):
        return [{"key": k, "val": v} for k, v in self.variables.items()]

    def create_variable(self, variable):
        self.variables[variable["key"]] = variable["val"]

    def delete_variable(self, key):
        self.variables.pop(key, None)

    def rest_dag(self, dag_id):
        if dag_id not in self.dags:
            return None
        answers = self.next_runs.get(dag_id, [None])
        value = answers.pop(0) if len(answers) > 1 else answers[0]
        return {"dag_id": dag_id, "is_paused": self.dags[dag_id], "next_dagrun_logical_date": value, "file_token": "t"}

    def rest_reparse(self, token):
        self.calls.append(("reparse", token))
        return True


def _wire(op, source, target):
    op.__dict__["source_hook"] = source
    op.__dict__["target_hook"] = target
    op.conflict_policy = "skip"
    return op


def test_pause_records_states_pauses_and_waits_for_the_runs_to_drain(monkeypatch):
    running = [{"run_id": "r2", "state": "running"}, {"run_id": "r1", "state": "success"}]
    source = FakeAirflow(dags={"a": False, "b": True, "starship_sync": False}, runs={"a": running})
    target = FakeAirflow()
    op = _wire(CutoverPauseOperator(task_id="p", timeout_minutes=1, poll_seconds=0), source, target)
    sleeps = []

    def finish_run(_seconds):
        sleeps.append(_seconds)
        running[0]["state"] = "success"

    monkeypatch.setattr(cutover.time, "sleep", finish_run)
    summary = Summary(resource="cutover")
    op.migrate(summary, _context())
    assert op.result == {"dags": {"a": False, "b": True}}  # the migration's own DAGs are left alone
    assert source.calls == [("pause", "a")]
    assert len(sleeps) == 1 and summary.failed == 0
    assert cutover.read_records(target) == {"a": False, "b": True}


def test_a_run_that_slips_in_before_the_pause_is_let_finish(monkeypatch):
    class Racy(FakeAirflow):
        """The scheduler creates a run just before the pause takes effect, once."""

        def set_dag_paused(self, dag_id, paused):
            super().set_dag_paused(dag_id, paused)
            if paused and len(self.calls) == 1:
                self.runs["a"] = [{"run_id": "late", "state": "queued"}]

    source = Racy(dags={"a": False})
    op = _wire(CutoverPauseOperator(task_id="p", timeout_minutes=1, poll_seconds=0), source, FakeAirflow())

    def run_finishes(_seconds):
        source.runs["a"][0]["state"] = "success"

    monkeypatch.setattr(cutover.time, "sleep", run_finishes)
    summary = Summary(resource="cutover")
    op.migrate(summary, _context())
    # paused, unpaused so the late run can finish (a paused DAG's runs stand still), paused again
    assert source.calls == [("pause", "a"), ("unpause", "a"), ("pause", "a")]
    assert source.dags == {"a": True} and summary.failed == 0


def test_a_rerun_keeps_the_state_recorded_before_the_first_pause():
    """Also after a finished cutover: the source DAG is paused by then, but it ran before."""
    source = FakeAirflow(dags={"a": True})  # paused by the first attempt
    target = FakeAirflow()
    target.variables[cutover.RECORD_PREFIX + "a"] = json.dumps({"was_paused": False})
    op = _wire(CutoverPauseOperator(task_id="p", timeout_minutes=1), source, target)
    op.migrate(Summary(resource="cutover"), _context())
    assert op.result == {"dags": {"a": False}}


def test_pause_timeout_unpauses_what_it_paused_and_fails(monkeypatch):
    source = FakeAirflow(dags={"a": False, "b": True}, runs={"a": [{"run_id": "r", "state": "queued"}]})
    target = FakeAirflow()
    op = _wire(CutoverPauseOperator(task_id="p", timeout_minutes=0.0001, poll_seconds=0), source, target)
    monkeypatch.setattr(cutover.time, "sleep", lambda _s: None)
    summary = Summary(resource="cutover")
    op.migrate(summary, _context())
    assert summary.failed == 1 and "a: r" in summary.failures[0]["reason"]
    assert source.dags == {"a": False, "b": True}  # as before the cutover
    assert target.variables == {}


def test_cutover_without_history_is_refused():
    op = _wire(CutoverPauseOperator(task_id="p", history_enabled=False), FakeAirflow(), FakeAirflow())
    with pytest.raises(Exception, match="dag_history"):
        op.migrate(Summary(resource="cutover"), _context())


def test_unpause_waits_until_the_next_run_is_after_the_last_migrated_run(monkeypatch):
    last = datetime.datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    runs = [{"run_id": "m", "run_type": "manual", "logical_date": "2026-01-01T11:00:00+00:00"},
            {"run_id": "s", "run_type": "scheduled", "logical_date": last.isoformat()}]
    target = FakeAirflow(dags={"a": True, "b": True}, runs={"a": runs},
                         next_runs={"a": ["2026-01-01T10:00:00+00:00"] * 3 + ["2026-01-01T10:06:00+00:00"]})
    op = _wire(CutoverUnpauseOperator(task_id="u", pause_task_id="p", discover_task_id="d", timeout_minutes=1,
                                      poll_seconds=0),
               FakeAirflow(), target)
    sleeps = []
    monkeypatch.setattr(cutover.time, "sleep", sleeps.append)
    summary = Summary(resource="cutover")
    clean = {"failed": 0}
    op.dag_checks = {"history.dag_runs": True, "history.validate": False}
    op.settings_checks = {"validate_settings": True}
    op.migrate(summary, _context({
        ("p", "return_value"): {"dags": {"a": False, "b": True, "c": False, "d": False}},
        # two history tasks: a and c in the first, b in the second
        ("d", "return_value"): [[{"dag_id": "a"}, {"dag_id": "c"}], [{"dag_id": "b"}]],
        ("history.dag_runs", "summary", 0): [{**clean, "dag_id": "a"}, {"failed": 1, "dag_id": "c"}],  # c's failed
        ("history.dag_runs", "summary", 1): [{**clean, "dag_id": "b"}],
        ("validate_settings", "summary"): clean,
    }))
    assert target.dags == {"a": False, "b": True}  # b was paused on the source: mirrored
    assert ("reparse", "t") in target.calls
    assert any("next run 2026-01-01T10:06:00" in n for n in summary.notes), summary.notes
    assert summary.updated == 1 and summary.unchanged == 1
    assert {f["item"]: f["reason"].split(": ")[1].split(";")[0] for f in summary.failures} == {
        "DAG 'c'": "history.dag_runs did not finish cleanly", "DAG 'd'": "its history was not migrated in this run"}
    assert not any(dag in ("c", "d") for _, dag in target.calls if _ == "unpause")
    assert len(sleeps) == 2  # not unpaused while the next run was still 10:00 (<= the last migrated 10:05)


def test_unpause_gives_up_and_leaves_the_dag_paused(monkeypatch):
    runs = [{"run_id": "s", "run_type": "scheduled", "logical_date": "2026-01-01T10:05:00+00:00"}]
    target = FakeAirflow(dags={"a": True}, runs={"a": runs}, next_runs={"a": ["2026-01-01T10:00:00+00:00"]})
    op = _wire(CutoverUnpauseOperator(task_id="u", pause_task_id="p", discover_task_id="d",
                                      timeout_minutes=0.0001, poll_seconds=0),
               FakeAirflow(), target)
    monkeypatch.setattr(cutover.time, "sleep", lambda _s: None)
    summary = Summary(resource="cutover")
    op.migrate(summary, _context({("p", "return_value"): {"dags": {"a": False}},
                                  ("d", "return_value"): [[{"dag_id": "a"}]]}))
    assert target.dags == {"a": True}
    assert summary.failed == 1 and "left paused" in summary.failures[0]["reason"]


def test_next_run_reads_both_rest_api_versions():
    assert next_run({"next_dagrun": "2026-01-01T00:00:00+00:00"}) == datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert next_run({"next_dagrun_logical_date": "2026-01-02T00:00:00Z"}) == datetime.datetime(2026, 1, 2, tzinfo=UTC)
    assert next_run({}) is None


def test_a_failure_in_a_summary_part_keeps_the_dag_from_being_unpaused():
    op = CutoverUnpauseOperator(task_id="u", pause_task_id="p", discover_task_id="d",
                                dag_checks={"history.dag_runs": True})
    broken_history = {"failed": 0, "parts": [{"resource": "task_instance_history", "failed": 1}]}
    problems = op.incomplete(_context({
        ("d", "return_value"): [[{"dag_id": "a"}, {"dag_id": "b"}]],
        ("history.dag_runs", "summary", 0): [{"dag_id": "a", "failed": 0, "parts": [{"failed": 0}]},
                                             {"dag_id": "b", **broken_history}],
    }))
    assert problems == {"a": "", "b": "history.dag_runs did not finish cleanly"}
