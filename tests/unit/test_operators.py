"""Conflict policies and failure handling of the keyed-resource operators, with the hooks mocked."""

from __future__ import annotations

import json

import pytest

from starship_dags.exceptions import StarshipConflictError, StarshipServerError
from starship_dags.operators.base import as_name_list
from starship_dags.operators.connections import ConnectionsMigrationOperator
from starship_dags.operators.variables import VariablesMigrationOperator
from starship_dags.report import Summary, format_table


class FakeTarget:
    """Just enough of StarshipHook for variables, keeping state like a real target."""

    def __init__(self, items, fail_create=()):
        self.items = {i["key"]: dict(i) for i in items}
        self.fail_create = set(fail_create)
        self.calls = []

    def get_variables(self):
        return list(self.items.values())

    def create_variable(self, item):
        self.calls.append(("create", item["key"], item["val"]))
        if (item["key"], item["val"]) in self.fail_create:
            raise StarshipServerError("t", "POST", "/api/starship/variables", 500, "boom")
        if item["key"] in self.items:
            raise StarshipConflictError("t", "POST", "/api/starship/variables", 409)
        self.items[item["key"]] = dict(item)

    def delete_variable(self, key):
        self.calls.append(("delete", key))
        self.items.pop(key, None)

    def add_secrets(self, values):
        pass


def operator(source_items, target: FakeTarget, **kwargs) -> VariablesMigrationOperator:
    op = VariablesMigrationOperator(task_id="variables", **kwargs)
    op.conflict_policy = kwargs.get("conflict_policy", "skip")
    op.__dict__["source_hook"] = FakeTarget(source_items)
    op.__dict__["target_hook"] = target
    return op


def run(op) -> Summary:
    summary = Summary(resource="variables")
    op.migrate(summary, context={})
    return summary


SOURCE = [{"key": "a", "val": "1", "description": None}, {"key": "b", "val": "2", "description": "d"}]


def test_skip_leaves_differing_items_and_names_them():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = run(operator(SOURCE, target))
    assert (summary.created, summary.skipped) == (1, 1)
    assert summary.skipped_items == ["variable 'a' (differs on the target: val)"]
    assert target.items["a"]["val"] == "other"


def test_fail_policy_fails_the_item_and_writes_nothing_for_it():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = run(operator(SOURCE, target, conflict_policy="fail"))
    assert summary.failed == 1 and summary.failures[0]["item"] == "variable 'a'"
    assert "val" in summary.failures[0]["reason"] and "other" not in summary.failures[0]["reason"]
    assert ("delete", "a") not in target.calls and target.items["b"]["val"] == "2"


def test_overwrite_restores_the_old_item_when_the_insert_fails():
    target = FakeTarget([{"key": "a", "val": "old", "description": None}], fail_create={("a", "1")})
    summary = run(operator(SOURCE, target, conflict_policy="overwrite"))
    assert summary.failed == 1 and "boom" in summary.failures[0]["reason"]
    assert target.items["a"]["val"] == "old"  # nothing already on the target is lost
    assert summary.created == 1


def test_conflict_on_create_with_same_content_counts_as_created():
    target = FakeTarget([])
    op = operator(SOURCE, target)
    original = target.create_variable

    def committed_but_answer_lost(item):
        original(item)
        raise StarshipConflictError("t", "POST", "/api/starship/variables", 409)

    target.create_variable = committed_but_answer_lost
    summary = run(op)
    assert (summary.created, summary.failed) == (2, 0)


def test_dry_run_writes_nothing():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = Summary(resource="variables", dry_run=True)
    operator(SOURCE, target, conflict_policy="overwrite").migrate(summary, context={})
    assert (summary.created, summary.updated) == (1, 1)
    assert target.calls == []


def test_names_not_on_the_source_are_failures():
    target = FakeTarget([])
    summary = run(operator(SOURCE, target, names=["b", "nope"]))
    assert summary.created == 1 and summary.failures == [{"item": "variable 'nope'", "reason": "not found on the source"}]


def test_connection_extras_compare_as_json():
    op = ConnectionsMigrationOperator(task_id="c")
    a = op.normalize({"conn_id": "x", "conn_type": "http", "extra": '{"a": 1, "b": 2}', "port": "80"})
    b = op.normalize({"conn_id": "x", "conn_type": "http", "extra": '{"b":2,"a":1}', "port": 80})
    assert op.differing_fields(a, b) == []
    assert op.differing_fields(a, {**b, "password": "p"}) == ["password"]


def test_connection_secrets_include_sensitive_extra_fields():
    op = ConnectionsMigrationOperator(task_id="c")
    values = op.secret_values({"password": "pw", "extra": '{"api_key": "k-1", "region": "eu"}'})
    assert values == ["pw", "k-1"]


@pytest.mark.parametrize(
    ("value", "names"),
    [(None, []), ("", []), ("a, b", ["a", "b"]), ('["x/y", "z"]', ["x/y", "z"]), (["p", " "], ["p"]), ("a\nb", ["a", "b"])],
)
def test_name_lists(value, names):
    assert as_name_list(value) == names


def test_report_table_lists_failures_by_name():
    s = Summary(resource="variables")
    s.add("created", "variable 'a'")
    s.add("failed", "variable 'b'", "HTTP 500")
    table = format_table([s])
    assert "variables" in table.splitlines()[2] and "variable 'b': HTTP 500" in table


@pytest.mark.parametrize(
    ("conn_id", "valid"),
    [("conn with spaces", False), ("conn%2Fpct", False), ("🚀conn", False), ("q'uote", False), ("x" * 251, False),
     ("../..", True), ("http.api/v1", True), ("x" * 250, True), ("a#!():\\/-_.", True)],
)
def test_connection_ids_the_target_would_turn_into_null_are_refused_up_front(conn_id, valid):
    from starship_dags.operators.connections import ConnectionsMigrationOperator

    operator = ConnectionsMigrationOperator(task_id="c")
    reason = operator.refused_by_target(conn_id)
    assert (reason is None) is valid
    if reason:
        assert "rename it on the source" in reason


class _Ti:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


class _CountingTarget(FakeTarget):
    request_count = write_count = 0


def test_execute_records_wall_time_and_peak_memory_in_the_summary():
    target = _CountingTarget([])
    op = operator(SOURCE, target)
    op.__dict__["source_hook"] = _CountingTarget(SOURCE)
    op.source_hook.api_calls = op.source_hook.request_count = 0
    op.target_conn_id = "t"
    ti = _Ti()
    op.execute({"ti": ti})
    summary = ti.pushed["summary"]
    assert summary["created"] == 2 and summary["seconds"] >= 0
    assert 0 < summary["memory_start_mb"] <= summary["memory_peak_mb"]  # Linux: /proc/self/status


def test_a_part_counts_its_own_requests_and_time_and_the_main_summary_the_rest():
    op = operator(SOURCE, _CountingTarget([]))
    op.__dict__["source_hook"] = _CountingTarget(SOURCE)
    op.source_hook.api_calls = op.source_hook.request_count = 0
    copy = op.migrate

    def migrate(summary, context):
        op.source_hook.request_count += 3
        with op.part("extra"):
            op.source_hook.request_count += 5
        copy(summary, context)

    op.migrate = migrate
    ti = _Ti()
    op.execute({"ti": ti})
    summary = ti.pushed["summary"]
    assert summary["source_requests"] == 3 and summary["parts"][0]["source_requests"] == 5
    assert summary["parts"][0]["resource"] == "extra"


def _dag_runs_task(plan, fail=False):
    """The dag_runs task with its comparison replaced: it makes ``plan`` (and fails with ``fail``)."""
    from starship_dags.operators.history import DagRunsMigrationOperator

    op = DagRunsMigrationOperator(
        task_id="dag_runs", source_dags=[{"dag_id": "d"}], artifacts=["xcoms"],
        children={"h.xcoms": True, "h.task_logs": False, "h.validate": "false"},
        artifact_children=["h.xcoms", "h.task_logs"],
    )

    def migrate(summary, context):
        op.plan = plan
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
    from starship_dags.compat import AIRFLOW_MAJOR

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
    assert "skipped_tasks" not in ti.pushed["return_value"]["plans"]["d"]


class _TiPages:
    """A source whose task instances and retry history come in pages of runs, and a target that
    counts its reads."""

    def __init__(self, pages, target_rows=(), history_pages=()):
        self.pages, self.target = pages, list(target_rows)
        self.history_pages = list(history_pages)
        self.target_reads = 0
        self.limits = []  # runs asked for, per source page
        self.airflow_major = 2
        self.request_count = self.api_calls = self.write_count = 0

    RUNS_PER_PAGE = 100  # each given page stands for this many runs, its rows in the first one

    def _page(self, pages, limit, offset):
        self.request_count += 1
        self.api_calls += 1
        self.limits.append(limit)
        runs = []
        for rows in pages:
            runs += [list(rows)] + [[]] * (self.RUNS_PER_PAGE - 1)
        page = [row for run in runs[offset:offset + limit] for row in run]
        return {"task_instances": page, "dag_run_count": len(runs)}

    def get_task_instances(self, dag_id, limit, offset):
        return self._page(self.pages, limit, offset)

    def get_task_instance_history(self, dag_id, limit, offset):
        return self._page(self.history_pages or [[]] * len(self.pages), limit, offset)

    def iter_task_instances(self, dag_id, page_size):
        self.target_reads += 1
        return iter(self.target)

    def iter_task_instance_history(self, dag_id, page_size):
        self.target_reads += 1
        return iter(())


def _ti(run_id, task_id="t", try_number=None):
    row = {"dag_id": "d", "run_id": run_id, "task_id": task_id, "map_index": -1, "state": "success"}
    return row if try_number is None else {**row, "try_number": try_number}


def _children_run(plan, hooks, **spec):
    """dag_runs' second half: the task instances and retry history of the runs ``plan`` names
    (``spec``: more of the DAG's entry in start's list)."""
    from starship_dags.operators.history import DagRunsMigrationOperator

    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[{"dag_id": "d", **spec}])
    op.source_dag = {"dag_id": "d", **spec}
    op.plan = {"refused_run_ids": [], **plan}
    op.__dict__["source_hook"] = op.__dict__["target_hook"] = hooks
    written = []
    def post(summary, rows, what, hold_tail=False):
        written.extend((what.resource, r["run_id"], r["task_id"]) for r in rows)
        return []

    op.post = post
    summary = Summary(resource="dag_runs")
    op.copy_children(summary, context={})
    return op.parts, written


def test_task_instances_of_runs_written_just_now_are_not_looked_up_on_the_target():
    # r2 shows up on both pages (runs tied in start dates move between pages): it counts once
    pages = [[_ti("r1"), _ti("r1", "u"), _ti("r2")], [_ti("r2"), _ti("r3")]]
    plan = {"run_ids": ["r1", "r2", "r3"], "existing_run_ids": [], "scan_runs": 200, "source_total": 200}
    hooks = _TiPages(pages)
    parts, written = _children_run(plan, hooks)
    tis = [(run, task) for what, run, task in written if what == "task_instances"]
    assert tis == [("r1", "t"), ("r1", "u"), ("r2", "t"), ("r3", "t")] and hooks.target_reads == 0
    # a run that was on the target before: its rows are looked up, and the ones there are left alone
    hooks = _TiPages(pages, target_rows=[_ti("r2")])
    parts, written = _children_run({**plan, "existing_run_ids": ["r2"]}, hooks)
    tis = [(run, task) for what, run, task in written if what == "task_instances"]
    assert tis == [("r1", "t"), ("r1", "u"), ("r3", "t")] and parts[0].unchanged == 1
    assert hooks.target_reads == 2  # task instances, then retry history


def test_rows_of_refused_runs_are_counted_once_and_not_written():
    # r2 was refused by the target; its rows show up on both pages (a tie moved the run)
    pages = [[_ti("r1"), _ti("r2"), _ti("r2", "u")], [_ti("r2"), _ti("r2", "u"), _ti("r3")]]
    plan = {"run_ids": ["r1", "r3"], "existing_run_ids": [], "refused_run_ids": ["r2"], "scan_runs": 200,
            "source_total": 200}
    parts, written = _children_run(plan, _TiPages(pages))
    assert [(run, task) for what, run, task in written if what == "task_instances"] == [("r1", "t"), ("r3", "t")]
    assert parts[0].skipped == 2 and [item.split(" (")[0] for item in parts[0].skipped_items] == ["2 row(s) of run 'r2'"]


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
    from starship_dags.operators.history import DagRunsMigrationOperator

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

    op.post = post
    summary = Summary(resource="dag_runs")
    assert op.copy_runs(summary) is True
    plan = op.plan
    assert posted == ["r1", "r4"] and summary.created == 1 and summary.unchanged == 3  # r0, r5, r6
    assert plan["refused_run_ids"] == ["r3", "r4"]
    assert [f["item"] for f in summary.failures] == ["run 'r3'", "run 'r4'"]
    if with_marker:  # the run written now, and the one pending at the last sync
        assert plan["run_ids"] == ["r1", "r5"] and plan["existing_run_ids"] == ["r5"]
        assert plan["scan_runs"] == 6  # down to r5, at position 5
    else:  # no proof of an earlier complete sync: every run on the target
        assert plan["run_ids"] == ["r0", "r1", "r5", "r6"] and plan["existing_run_ids"] == ["r0", "r5", "r6"]
        assert plan["scan_runs"] == 7
    # XComs were not copied by the last sync: every run on the target gets them checked
    assert plan["artifact_run_ids"] == ["r0", "r1", "r5", "r6"]
    assert plan["marker"]["pending"] == ["r2"]


def test_dag_runs_plans_only_new_runs_artifacts_when_the_marker_covers_them(monkeypatch):
    from starship_dags import sync_state
    from starship_dags.operators.history import DagRunsMigrationOperator

    source = [_run("r0", 1), _run("r1", 2), _run("r2", 3)]
    selection = {"runs_limit": 0, "since": None, "artifacts": ["xcoms"]}
    marker = sync_state.make_marker(source_url="http://source/", run_count=2, digest="older", pending=[],
                                    selection=selection)
    monkeypatch.setattr(sync_state, "delete_marker", lambda hook, dag_id: None)
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[], artifacts=["xcoms"])
    op.source_dag = {"dag_id": "d", "marker": marker, "marker_stored": True}
    op.__dict__["source_hook"], op.__dict__["target_hook"] = _Runs(source), _Runs(source[:2])
    op.post = lambda summary, rows, what=None, hold_tail=False: []
    assert op.copy_runs(Summary(resource="dag_runs")) is True
    assert op.plan["run_ids"] == op.plan["artifact_run_ids"] == ["r2"] and op.plan["scan_runs"] == 3
    # the same source again, with a marker made from it: unchanged, nothing planned
    op.source_dag["marker"] = sync_state.make_marker(
        source_url="http://source/", run_count=3, digest=sync_state.page_digest(source), pending=[],
        selection=selection)
    summary = Summary(resource="dag_runs")
    assert op.copy_runs(summary) is False and summary.unchanged == 3


def test_rows_of_several_pages_go_in_full_request_bodies(mocker, conn_env):
    import json

    from starship_dags.hooks.batching import encode_item
    from starship_dags.hooks.starship import StarshipHook
    from starship_dags.operators.history import DagRunsMigrationOperator
    from starship_dags.translate import TASK_INSTANCE, translate

    # 3 pages of 5 task instances; a body holds 4 of them
    pages = [[_ti(f"r{n}", f"t{k}") for k in range(5)] for n in range(3)]
    plan = {"run_ids": ["r0", "r1", "r2"], "existing_run_ids": [], "refused_run_ids": [], "scan_runs": 300,
            "source_total": 300, "source_major": 2}
    size = len(encode_item(translate(TASK_INSTANCE, pages[0][0], 2, 2))) + 1
    target = StarshipHook(conn_env("t", host="http://127.0.0.1:9", password="x"), max_batch_bytes=4 * size + 2)
    target.__dict__["airflow_major"] = 2
    bodies = []
    mocker.patch.object(target, "request", side_effect=lambda method, route, *, data, **kw: bodies.append(
        (route, [(r["run_id"], r["task_id"]) for r in json.loads(data)["task_instances"]])))
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[{"dag_id": "d"}])
    op.source_dag, op.plan = {"dag_id": "d"}, plan
    op.__dict__["source_hook"], op.__dict__["target_hook"] = _TiPages(pages), target
    op.copy_children(Summary(resource="dag_runs"), context={})
    tis = [body for route, body in bodies if route.endswith("/task_instances")]
    assert [len(body) for body in tis] == [4, 4, 4, 3]  # not 4+1 per page: the tail waits for the next page
    assert [row for body in tis for row in body] == [(f"r{n}", f"t{k}") for n in range(3) for k in range(5)]
    assert op.parts[0].created == 15


def test_dag_runs_copies_task_instances_then_retry_history_as_parts_of_its_summary():
    pages = [[_ti("r1"), _ti("r2")]]
    history = [[_ti("r1", try_number=1), _ti("r9", try_number=1), _ti("r2", try_number=1), _ti("r2", try_number=2)]]
    plan = {"run_ids": ["r1", "r2"], "existing_run_ids": [], "scan_runs": 100, "source_total": 100}
    parts, written = _children_run(plan, _TiPages(pages, history_pages=history))
    assert [w[0] for w in written] == ["task_instances"] * 2 + ["task_instance_history"] * 3  # not r9's
    assert [p.resource for p in parts] == ["task_instances", "task_instance_history"]
    assert [p.source_api_calls for p in parts] == [1, 1]  # each part counts its own reads (one page each)


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
    ("h.dag_runs", ["h.xcoms", "h.task_logs"], {}, False, True),  # the last copy task that runs
    ("h.dag_runs", ["h.task_logs"], {}, False, False),  # the XCom task runs after it and stores it
    ("h.dag_runs", ["h.xcoms", "h.task_logs"], {}, True, False),  # its own retry history failed
    ("h.task_logs", ["h.xcoms"], {"h.dag_runs": CLEAN}, False, True),
    ("h.task_logs", [], {"h.dag_runs": CLEAN, "h.xcoms": CLEAN}, False, True),
    ("h.task_logs", [], {"h.dag_runs": CLEAN}, False, False),  # the XCom task left no summary (killed)
    ("h.task_logs", ["h.xcoms"], {"h.dag_runs": BROKEN}, False, False),  # a part of dag_runs failed
])
def test_the_last_copy_task_that_runs_stores_the_marker_when_all_went_well(monkeypatch, task, skipped, summaries,
                                                                          own_failure, stored):
    from starship_dags import sync_state
    from starship_dags.operators.artifacts import TaskLogsMigrationOperator
    from starship_dags.operators.history import DagRunsMigrationOperator

    writes = []
    monkeypatch.setattr(sync_state, "write_marker", lambda hook, dag_id, marker: writes.append((dag_id, marker)))
    chain = ["h.dag_runs", "h.xcoms", "h.task_logs"]
    position = chain.index(task)
    order = {"earlier": chain[:position], "later": chain[position + 1:]}
    plan = {"marker": {"m": 1}, "skipped_tasks": skipped}
    if task == "h.dag_runs":
        op = DagRunsMigrationOperator(task_id=task, source_dags=[{"dag_id": "d"}], **order)
    else:
        op = TaskLogsMigrationOperator(task_id=task, source_dags=[{"dag_id": "d"}], plans={"plans": {"d": plan}},
                                       **order)
    op.source_dag, op.plan = {"dag_id": "d"}, plan
    op.__dict__["target_hook"] = None
    summary = Summary(resource="x")
    if own_failure:
        op.parts = [Summary(resource="task_instance_history", failed=1)]
    op.store_marker(summary, {"ti": _Pulls(summaries)})
    assert writes == ([("d", {"m": 1})] if stored else [])


def test_retry_history_is_read_past_the_planned_depth_only_for_runs_that_were_retried():
    # r3 should be on the first page but a tie in start dates put it on the second
    plan = {"run_ids": ["r1", "r3"], "existing_run_ids": [], "scan_runs": 100, "source_total": 300}
    pages = [[_ti("r1")], [_ti("r3", try_number=1)], [_ti("r4")]]
    hooks = _TiPages(pages, history_pages=[[], [], []])
    parts, written = _children_run(plan, hooks)
    assert [p.source_api_calls for p in parts] == [2, 1]  # task instances read on until r3 showed up
    assert hooks.limits == [100, 400, 200]  # history: nothing retried, so one page as deep as the plan goes
    # r3 was retried: its history must be somewhere, so it is read on for too
    pages[1] = [_ti("r3", try_number=2)]
    history = [[], [_ti("r3", try_number=1)], []]
    hooks = _TiPages(pages, history_pages=history)
    parts, written = _children_run(plan, hooks)
    assert [p.source_api_calls for p in parts] == [2, 1]  # one earlier try in 200 runs: one large history page
    assert ("task_instance_history", "r3", "t") in written
    # with many earlier tries the history pages are small, and the one that should hold r3's does not
    pages[0] = [_ti("r1", try_number=100_001)]  # 100,000 earlier tries in 300 runs: 100-run pages
    history = [[_ti("r1", try_number=n) for n in (1, 2)], [_ti("r3", try_number=1)], []]
    hooks = _TiPages(pages, history_pages=history)
    parts, written = _children_run(plan, hooks)
    assert hooks.limits[2:] == [100, 400] and [p.source_api_calls for p in parts] == [2, 2]
    assert ("task_instance_history", "r3", "t") in written


def test_run_pages_grow_towards_page_rows_and_shrink_for_heavy_runs():
    from starship_dags.operators.history import MAX_PAGE_RUNS, PAGE_ROWS, RunPager

    pager = RunPager()
    assert (pager.offset, pager.limit) == (0, 100)
    pager.advance(500)  # 5 rows per run: room for 1,000 runs, but a page grows at most 4-fold
    assert (pager.offset, pager.limit) == (100, 400)
    pager.advance(2000)
    assert (pager.offset, pager.limit) == (500, PAGE_ROWS // 5)
    pager.advance(0)  # runs without rows (retry history of runs never retried)
    assert pager.limit == min(4 * PAGE_ROWS // 5, MAX_PAGE_RUNS)
    pager.advance(pager.limit * 1000)  # 1,000 rows per run
    assert pager.limit == PAGE_ROWS // 1000
    pager.advance(10 * PAGE_ROWS)  # one run heavier than a whole page: one run per page
    assert pager.limit == 1 and pager.offset == 100 + 400 + 1000 + 2000 + 5


def test_the_first_retry_history_page_is_sized_from_the_task_instances_earlier_tries():
    from starship_dags.operators.history import FIRST_PAGE_RUNS, MAX_PAGE_RUNS, PAGE_ROWS, RunPager

    assert RunPager((50, 500)).limit == MAX_PAGE_RUNS  # 0.1 rows per run: as many runs as a page may ask for
    assert RunPager((0, 500)).limit == MAX_PAGE_RUNS  # nothing retried
    assert RunPager((2 * PAGE_ROWS, 1000)).limit == 500  # 10 rows per run: half of them
    assert RunPager((10 * PAGE_ROWS, 10)).limit == FIRST_PAGE_RUNS  # never below the usual first page
    # in a DAG copy: 2 of 3 task instances retried once, in 200 runs read: one history page, as
    # deep as the plan reads and a first page more (not the 2,000 runs the estimate alone allows)
    pages = [[_ti("r1", try_number=2), _ti("r1", "u", try_number=2), _ti("r1", "v")], [_ti("r2")]]
    plan = {"run_ids": ["r1", "r2"], "existing_run_ids": [], "scan_runs": 200, "source_total": 200}
    hooks = _TiPages(pages, history_pages=[[_ti("r1", try_number=1), _ti("r1", "u", try_number=1)], []])
    parts, written = _children_run(plan, hooks)
    assert hooks.limits == [100, 400, 200 + FIRST_PAGE_RUNS]
    assert RunPager((50, 500), depth=20).limit == 20 + FIRST_PAGE_RUNS
    assert [w for w in written if w[0] == "task_instance_history"] == [
        ("task_instance_history", "r1", "t"), ("task_instance_history", "r1", "u")]


def test_a_whole_history_is_read_in_pages_that_grow():
    pages = [[_ti("r1")], [_ti("r2")], [_ti("r3")], [_ti("r4")], [_ti("r5")], [_ti("r6")]]
    plan = {"run_ids": [f"r{n}" for n in range(1, 7)], "existing_run_ids": [], "scan_runs": 600, "source_total": 600}
    hooks = _TiPages(pages)
    parts, written = _children_run(plan, hooks)
    assert [run for what, run, _ in written if what == "task_instances"] == plan["run_ids"]
    # task instances, then retry history: no task instance was retried, so one page of every run
    assert hooks.limits == [100, 400, 1600, 700]
    assert [p.source_api_calls for p in parts] == [3, 1]


def test_the_first_task_instance_page_is_sized_from_the_runs_start_read():
    from starship_dags.operators.history import PAGE_ROWS

    # start read 2 task instances per run off the newest runs: the first page asks for as many runs
    # as hold about PAGE_ROWS rows, and the whole history comes in one page
    pages = [[_ti("r1"), _ti("r1", "u")], [_ti("r2")], [_ti("r3")], [_ti("r4")], [_ti("r5")], [_ti("r6")]]
    plan = {"run_ids": [f"r{n}" for n in range(1, 7)], "existing_run_ids": [], "scan_runs": 600, "source_total": 600}
    hooks = _TiPages(pages)
    parts, written = _children_run(plan, hooks, tasks_per_run=2.0)
    assert hooks.limits[0] == min(PAGE_ROWS // 2, 600 + 100) and [p.source_api_calls for p in parts] == [1, 1]
    assert [run for what, run, _ in written if what == "task_instances"] == ["r1", "r1", *plan["run_ids"][1:]]
    # wide runs (500 task instances): the first page is the usual one, never smaller
    hooks = _TiPages(pages)
    _children_run(plan, hooks, tasks_per_run=500.0)
    assert hooks.limits[:2] == [100, 400]
    # an incremental copy that needs the newest 50 runs reads about as deep, not 2,500 runs
    hooks = _TiPages(pages)
    _children_run({**plan, "run_ids": ["r1"], "scan_runs": 50}, hooks, tasks_per_run=2.0)
    assert hooks.limits[0] == 50 + 100


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
    from starship_dags.operators.history import DagRunsMigrationOperator

    key = sync_state.variable_key("d")
    hooks = _EmptyHistory(**({key: "{}"} if stored else {}))
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[{"dag_id": "d", "marker": None,
                                                                     "marker_stored": stored}])
    op.__dict__["source_hook"] = op.__dict__["target_hook"] = hooks
    op.execute({"ti": _Ti()})
    assert [method for method, _ in hooks.calls] == calls
    assert json.loads(hooks.stored[key])["run_count"] == 0


def test_history_tasks_take_the_versions_start_read(mocker, conn_env):
    from starship_dags.hooks.starship import StarshipHook
    from starship_dags.operators.history import DagRunsMigrationOperator

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


def test_keys_of_runs_hold_each_string_once_and_only_the_runs_asked_for():
    from starship_dags.operators.history import keys_of_runs
    from starship_dags.translate import ti_natural_key

    runs = {"run_a", "run_b"}
    # every row its own string objects, as parsed JSON has them
    rows = [{"dag_id": "".join("dag"), "run_id": "".join(["run_", r]), "task_id": "".join(["task_", t]), "map_index": m}
            for r in "abc" for t in "xy" for m in (-1, 0)]
    keys = keys_of_runs(iter(rows), ti_natural_key, runs)
    assert keys == {ti_natural_key(r) for r in rows if r["run_id"] in runs} and len(keys) == 8
    shared = {(id(part), part) for key in keys for part in key if isinstance(part, str)}
    assert len(shared) == 5  # one dag id, the two run ids, two task ids
    assert {part for _, part in shared} >= runs and all(
        any(part is run_id for run_id in runs) for key in keys for part in key[1:2])


class _ShiftingTis:
    """A source whose DAG starts a run after the first page is read: later pages, by offset, repeat
    the run at the previous page's end (Starship orders newest first)."""

    airflow_major = 2

    def __init__(self, runs, tasks):
        self.runs, self.tasks, self.calls = list(runs), tasks, 0

    def get_task_instances(self, dag_id, limit, offset):
        self.calls += 1
        if self.calls == 2:
            self.runs.insert(0, "started_meanwhile")
        page = self.runs[offset:offset + limit]
        return {"task_instances": [{"dag_id": "d", "run_id": r, "task_id": t, "map_index": -1}
                                   for r in page for t in self.tasks], "dag_run_count": len(self.runs)}


def test_source_task_instances_take_a_run_met_twice_from_its_first_page():
    from starship_dags.operators.history import DagRunsMigrationOperator

    source = _ShiftingTis([f"r{i:03d}" for i in range(150)], ["t", "u"])
    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[])
    op.__dict__["source_hook"] = source
    wanted = {"r000", "r099", "r100", "r149"}  # r099 ends the first page and leads the second
    rows = list(op.source_task_instances("d", wanted, {"source_total": 150}))
    assert sorted((r["run_id"], r["task_id"]) for r in rows) == [(r, t) for r in sorted(wanted) for t in "tu"]
    assert source.calls == 2
