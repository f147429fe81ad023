"""Edge cases of cutover, validation, the environment listing and the sync/manual guard, with fake hooks.

The real-server behaviour (schedulers on both sides) is in tests/integration/test_user_path.py.
"""

from __future__ import annotations

import datetime
import json

import pytest

from starship_dags.exceptions import StarshipAuthError, StarshipServerError
from starship_dags.operators import cutover
from starship_dags.operators.cutover import CutoverPauseOperator, CutoverUnpauseOperator, next_run
from starship_dags.operators.environment import SourceEnvironmentOperator, environment_only_names
from starship_dags.operators.guard import SKIP_REASON_KEY, ActiveRunGuardOperator
from starship_dags.operators.history import classify_runs
from starship_dags.operators.validation import compare_counts
from starship_dags.report import Summary

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


def _context(xcoms=None):
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


def test_classify_runs_applies_since_and_limit_to_finished_runs_only():
    runs = [{"run_id": "q", "state": "queued"},
            {"run_id": "new", "state": "success", "logical_date": "2026-03-01T00:00:00+00:00"},
            {"run_id": "mid", "state": "failed", "logical_date": "2026-02-01T00:00:00+00:00"},
            {"run_id": "old", "state": "success", "logical_date": "2025-01-01T00:00:00+00:00"}]
    got = [(kind, run["run_id"]) for kind, _, run in classify_runs(runs, {"since": "2026-01-01", "runs_limit": 0})]
    assert got == [("pending", "q"), ("selected", "new"), ("selected", "mid")]
    got = [(kind, run["run_id"]) for kind, _, run in classify_runs(runs, {"since": None, "runs_limit": 1})]
    assert got == [("pending", "q"), ("selected", "new")]


def test_environment_lists_names_only():
    environ = {"AIRFLOW_CONN_DB": "postgres://u:SECRET@h", "AIRFLOW_VAR_KEY": "SECRET", "AIRFLOW__CORE__X": "1",
               "PATH": "/bin"}
    assert environment_only_names(environ) == ["AIRFLOW_CONN_DB", "AIRFLOW_VAR_KEY"]

    class Source:
        def env_vars(self):
            return environ

    op = SourceEnvironmentOperator(task_id="environment")
    op.__dict__["source_hook"] = Source()
    summary = Summary(resource="environment")
    op.migrate(summary, {})
    assert summary.skipped == 2 and "SECRET" not in json.dumps(summary.as_dict())
    assert "not migrated: set these on the target" in summary.notes[0]


class FakeRest:
    airflow_version = "2.11.0"  # the guard checks the pair of versions first

    def __init__(self, *answers, paused=False):
        self.answers = list(answers)
        self.paused = paused

    def rest_dag(self, dag_id):
        return {"dag_id": dag_id, "is_paused": self.paused}

    def rest_active_runs(self, dag_id):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_sync_guard_skips_while_a_manual_run_is_active():
    from starship_dags.compat import AirflowSkipException

    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_migration", wait=False)
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "manual__1"}])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    with pytest.raises(AirflowSkipException):
        op.execute(context)
    assert "manual__1" in context["ti"].pushed[SKIP_REASON_KEY]


def test_sync_guard_that_stands_aside_skips_the_whole_run_not_only_the_unselected_tasks():
    from starship_dags.compat import AirflowSkipException

    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_migration", wait=False,
                                children={"settings.pools": False, "cutover_pause_source": False})
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "manual__1"}])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    with pytest.raises(AirflowSkipException):
        op.execute(context)
    # the skip of the guard itself reaches every task but those that run whatever happened upstream
    # (trigger rule all_done, like the cutover's unpause): the skip list names those not meant to run
    assert context["ti"].pushed["skipmixin_key"] == {"skipped": ["cutover_pause_source", "settings.pools"]}


@pytest.mark.parametrize("children, skipped", [
    ({"settings.pools": True, "settings.variables": "False", "cutover_pause_source": False,
      "cutover_unpause_target": False, "validate_settings": ["pools"]},
     ["cutover_pause_source", "cutover_unpause_target", "settings.variables"]),
    ({"settings.pools": True, "cutover_pause_source": "true"}, []),
])
def test_guard_skips_the_tasks_the_form_leaves_out(children, skipped):
    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_sync", wait=True, children=children)
    op.__dict__["target_hook"] = FakeRest([])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    context["ti"].map_index = -1
    # the same skip list on Airflow 2 and 3, and the task goes on (its value may be a map's input)
    assert op.execute(context) is None
    assert context["ti"].pushed.get("skipmixin_key") == ({"skipped": skipped} if skipped else None)


def test_manual_guard_waits_for_the_sync_and_tolerates_an_unreadable_api(monkeypatch):
    from starship_dags.operators import guard

    monkeypatch.setattr(guard.time, "sleep", lambda _s: None)
    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_sync", wait=True, poll_seconds=0)
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "scheduled__1"}], [])
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # returns once the sync is done
    op.__dict__["target_hook"] = FakeRest(StarshipServerError("t", "GET", "/api/v2/x", 500, "boom"))
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # cannot check: goes on
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "scheduled__2"}], paused=True)
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # a paused sync's run stands still: not waited for
    op.__dict__["target_hook"] = FakeRest(StarshipAuthError("t", "GET", "/api/v2/x", 401, "no"))
    op.__dict__["source_hook"] = FakeRest([])
    with pytest.raises(StarshipAuthError):
        op.execute(_context())


def test_validation_leaves_out_runs_that_finished_after_the_copy():
    from starship_dags.operators.validation import HistoryValidationOperator

    op = HistoryValidationOperator(task_id="validate", source_dags=[{"dag_id": "d"}], plans=None)
    op.plan = {"source_cutoff": "2026-01-01T10:00:00+00:00"}
    runs = [{"run_id": "late", "end_date": "2026-01-01T10:00:01+00:00"},
            {"run_id": "seen", "end_date": "2026-01-01T10:00:00+00:00"},
            {"run_id": "no_end", "end_date": None}]
    newer = []
    assert [r["run_id"] for r in op._as_copied(runs, newer)] == ["seen", "no_end"]
    assert newer == ["late"]
    op.plan = {"source_cutoff": None}  # the copy selected no finished run: every finished one is newer
    newer = []
    assert [r["run_id"] for r in op._as_copied(runs, newer)] == ["no_end"]


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
