"""dag_runs: the run comparison, the plan it makes, what it skips."""

from __future__ import annotations

import json

import pytest

from starship_dags.compat import AIRFLOW_MAJOR
from starship_dags.exceptions import StarshipConflictError
from starship_dags.hooks.starship import StarshipHook
from starship_dags.operators import rows
from starship_dags.operators.dag_runs import DagRunsMigrationOperator
from starship_dags.plan import DagPlan
from starship_dags.report import Summary
from tests.unit.fakes import Ti as _Ti
from tests.unit.fakes import batch_task as _batch_task


def _dag_runs_task(plan, fail=False):
    """The dag_runs task with its comparison replaced: it makes ``plan`` (and fails with ``fail``)."""

    op = DagRunsMigrationOperator(
        task_id="dag_runs", source_dags=[{"dag_id": "d"}], artifacts=["xcoms"],
        children={"h.xcoms": True, "h.task_logs": False, "h.validate": "false"},
        artifact_children=["h.xcoms", "h.task_logs"],
    )

    def migrate(summary, context):
        op.plan = DagPlan("d", **plan)
        if fail:
            summary.add("failed", "run 'r'", "refused")

    op.migrate = migrate
    return op


@pytest.mark.parametrize("plan, skipped", [
    ({"idle": False, "artifact_run_ids": ["r"]}, ["h.task_logs", "h.validate"]),
    ({"idle": False, "artifact_run_ids": []}, ["h.task_logs", "h.validate", "h.xcoms"]),
    ({"idle": True}, ["h.task_logs", "h.validate", "h.xcoms"]),
])
def test_dag_runs_skips_the_later_tasks_with_nothing_to_do(plan, skipped):

    ti = _Ti()
    ti.map_index = 3
    op = _dag_runs_task(plan)
    if AIRFLOW_MAJOR >= 3:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        with pytest.raises(DownstreamTasksSkipped) as raised:
            op.execute({"ti": ti})
        assert raised.value.tasks == [(task_id, 3) for task_id in skipped]  # this DAG's map index only
    else:
        op.execute({"ti": ti})
        assert ti.pushed["skipmixin_key"] == {"skipped": skipped}
    assert ti.pushed["return_value"]["skipped_tasks"] == skipped
    assert ti.pushed["return_value"]["plans"]["d"]["skipped_tasks"] == skipped  # the report and cutover read it


def test_dag_runs_skips_nothing_after_a_failure():
    ti = _Ti()
    with pytest.raises(Exception, match="1 item"):
        _dag_runs_task({"idle": True}, fail=True).execute({"ti": ti})
    assert ti.pushed["return_value"]["skipped_tasks"] == [] and "skipmixin_key" not in ti.pushed
    assert ti.pushed["return_value"]["plans"]["d"]["skipped_tasks"] is None


class _Runs:
    """A source or target with these runs (one page), for dag_runs' comparison."""

    airflow_major = 2

    def __init__(self, runs):
        self.runs = runs

    def get_dag_runs(self, dag_id, limit, offset):
        return {"dag_runs": self.runs[offset:offset + limit], "dag_run_count": len(self.runs)}

    def iter_dag_runs(self, dag_id, page_size=500, first=None):
        yield from self.runs

    def url_from_endpoint(self, endpoint):
        return "http://source/"


def _run(run_id, day, state="success"):
    when = f"2024-01-{day:02d}T00:00:00+00:00"
    return {"dag_id": "d", "run_id": run_id, "state": state, "logical_date": when, "end_date": when}


@pytest.mark.parametrize("with_marker", [False, True])
def test_dag_runs_plans_which_runs_the_later_steps_check(monkeypatch, with_marker):
    from starship_dags import sync_state

    source = [_run("r0", 1), _run("r1", 2), _run("r2", 3, "running"), _run("r3", 4), _run("r4", 5),
              _run("r5", 6), _run("r6", 7)]
    # r0, r5 and r6 are on the target; r3's logical date is taken there by another run
    target = [_run("r0", 1), _run("other", 4), _run("r5", 6), _run("r6", 7)]
    selection = {"runs_limit": 0, "since": None, "artifacts": []}  # the last sync copied no XComs
    marker = sync_state.make_marker(source_url="http://source/", run_count=7, digest="older", pending=["r5"],
                                    selection=selection) if with_marker else None
    monkeypatch.setattr(sync_state, "delete_marker", lambda hook, dag_id: None)
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[], artifacts=["xcoms"])
    op.source_dag = {"dag_id": "d", "marker": marker, "marker_stored": with_marker}
    op.__dict__["source_hook"], op.__dict__["target_hook"] = _Runs(source), _Runs(target)
    posted = []

    def post(summary, rows, what=None, hold_tail=False):
        for row in rows:
            posted.append(row["run_id"])
            if row["run_id"] == "r4":
                summary.add("failed", "run 'r4'", "refused by the target")
            else:
                summary.created += 1
        return []

    monkeypatch.setattr(rows, "write", lambda op, summary, kind, batch, hold_tail=False: post(summary, batch))
    summary = Summary(resource="dag_runs")
    assert op.copy_runs(summary) is True
    plan = op.plan
    assert posted == ["r1", "r4"] and summary.created == 1 and summary.unchanged == 3  # r0, r5, r6
    assert plan.refused_run_ids == ["r3", "r4"]
    assert [f["item"] for f in summary.failures] == ["run 'r3'", "run 'r4'"]
    if with_marker:  # the run written now, and the one pending at the last sync
        assert plan.run_ids == ["r1", "r5"] and plan.existing_run_ids == ["r5"]
        assert plan.scan_runs == 6  # down to r5, at position 5
    else:  # no proof of an earlier complete sync: every run on the target
        assert plan.run_ids == ["r0", "r1", "r5", "r6"] and plan.existing_run_ids == ["r0", "r5", "r6"]
        assert plan.scan_runs == 7
    # XComs were not copied by the last sync: every run on the target gets them checked
    assert plan.artifact_run_ids == ["r0", "r1", "r5", "r6"]
    assert plan.marker["pending"] == ["r2"]


def test_dag_runs_plans_only_new_runs_artifacts_when_the_marker_covers_them(monkeypatch):
    from starship_dags import sync_state

    source = [_run("r0", 1), _run("r1", 2), _run("r2", 3)]
    selection = {"runs_limit": 0, "since": None, "artifacts": ["xcoms"]}
    marker = sync_state.make_marker(source_url="http://source/", run_count=2, digest="older", pending=[],
                                    selection=selection)
    monkeypatch.setattr(sync_state, "delete_marker", lambda hook, dag_id: None)
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[], artifacts=["xcoms"])
    op.source_dag = {"dag_id": "d", "marker": marker, "marker_stored": True}
    op.__dict__["source_hook"], op.__dict__["target_hook"] = _Runs(source), _Runs(source[:2])
    monkeypatch.setattr(rows, "write", lambda *args, **kwargs: [])
    assert op.copy_runs(Summary(resource="dag_runs")) is True
    assert op.plan.run_ids == op.plan.artifact_run_ids == ["r2"] and op.plan.scan_runs == 3
    # the same source again, with a marker made from it: unchanged, nothing planned
    op.source_dag["marker"] = sync_state.make_marker(
        source_url="http://source/", run_count=3, digest=sync_state.page_digest(source), pending=[],
        selection=selection)
    summary = Summary(resource="dag_runs")
    assert op.copy_runs(summary) is False and summary.unchanged == 3


def test_the_pushed_plans_leave_out_what_only_dag_runs_reads():
    op, _ = _batch_task({"a": "work"})
    original = op.migrate

    def migrate(summary, context):
        original(summary, context)
        op.plan.run_ids, op.plan.existing_run_ids, op.plan.refused_run_ids = ["r"] * 3, ["r"], []

    op.migrate = migrate
    ti = _Ti()
    op.execute({"ti": ti})
    pushed = ti.pushed["return_value"]["plans"]["a"]
    assert {"dag_id", "idle", "artifact_run_ids", "source_cutoff", "skipped_tasks"} <= set(pushed)
    assert not {"run_ids", "existing_run_ids", "refused_run_ids"} & set(pushed)


class _Variables:
    """The target's variables as Starship keeps them: a POST of an existing key is refused (409)."""

    def __init__(self, **stored):
        self.stored, self.calls = dict(stored), []

    def create_variable(self, variable):
        self.calls.append(("POST", variable["key"]))
        if variable["key"] in self.stored:
            raise StarshipConflictError("t", "POST", "/api/starship/variables", 409, "Integrity Error")
        self.stored[variable["key"]] = variable["val"]

    def delete_variable(self, key):
        self.calls.append(("DELETE", key))
        self.stored.pop(key, None)


def test_a_marker_is_stored_with_one_request_and_replaces_an_older_one():
    import json

    from starship_dags import sync_state

    key = sync_state.variable_key("d")
    target = _Variables()
    sync_state.write_marker(target, "d", {"run_count": 1})
    assert target.calls == [("POST", key)]
    target = _Variables(**{key: "old"})
    sync_state.write_marker(target, "d", {"run_count": 2})
    assert target.calls == [("POST", key), ("DELETE", key), ("POST", key)]
    assert json.loads(target.stored[key]) == {"run_count": 2}


class _EmptyHistory(_Variables):
    """A source DAG without runs, and a target that keeps variables (the sync markers)."""

    airflow_major = 2
    request_count = api_calls = write_count = 0

    def known_version(self, version):
        self.versions = [*getattr(self, "versions", []), version]

    def get_dag_runs(self, dag_id, limit, offset):
        return {"dag_runs": [], "dag_run_count": 0}

    def iter_dag_runs(self, dag_id, page_size, first=None):
        return iter((first or {}).get("dag_runs") or [])

    def url_from_endpoint(self, endpoint):
        return "http://source/"


@pytest.mark.parametrize("stored, calls", [
    (True, ["DELETE", "POST"]),  # deleted before anything is written, stored again at the end
    (False, ["POST"]),
])
def test_a_full_comparison_deletes_the_stored_marker_before_it_writes(stored, calls):
    """A full comparison ignores the marker but deletes it first: a copy stopped halfway must not
    leave behind a marker that says the DAG's history was complete."""
    from starship_dags import sync_state

    key = sync_state.variable_key("d")
    hooks = _EmptyHistory(**({key: "{}"} if stored else {}))
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[{"dag_id": "d", "marker": None,
                                                                     "marker_stored": stored}])
    op.__dict__["source_hook"] = op.__dict__["target_hook"] = hooks
    op.execute({"ti": _Ti()})
    assert [method for method, _ in hooks.calls] == calls
    assert json.loads(hooks.stored[key])["run_count"] == 0


def test_history_tasks_take_the_versions_start_read(mocker, conn_env):
    hook = StarshipHook(conn_env("s", host="http://127.0.0.1:9", password="x"))
    request = mocker.patch.object(hook, "request", side_effect=AssertionError("no request expected"))
    hook.known_version("3.1.2")
    hook.known_version("2.11.0")  # the first one stays
    assert (hook.airflow_version, hook.airflow_major) == ("3.1.2", 3) and not request.called
    # a history task hands each hook the version in its batch's specs
    source, target = _EmptyHistory(), _EmptyHistory()
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[
        {"dag_id": "d", "marker": None, "marker_stored": False, "target_version": "3.1.2", "source_version": "2.10.5"}])
    op.__dict__["source_hook"], op.__dict__["target_hook"] = source, target
    op.execute({"ti": _Ti()})
    assert target.versions == ["3.1.2"] and source.versions == ["2.10.5"]
