"""History tasks copy batches of DAGs: how DAGs are dealt out, and how one DAG's trouble affects the rest."""

from __future__ import annotations

import json

import pytest

from starship_dags.compat import AIRFLOW_MAJOR
from starship_dags.exceptions import StarshipAuthError
from starship_dags.operators.history import DagRunsMigrationOperator, DiscoverDagsOperator
from starship_dags.operators.validation import HistoryValidationOperator


class _Ti:
    map_index = 2

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


class _Dags:
    """The source's and the target's DAG lists, and no sync markers."""

    airflow_major = 2
    airflow_version = "2.11.0"

    def __init__(self, dag_ids, runs=None, markers=None, tasks=None):
        self.dag_ids, self.runs, self.markers = dag_ids, runs or {}, markers or {}
        self.tasks = tasks or {}  # task instances per run (default 5); an exception: the page fails
        self.probed = []

    def sibling(self, **_):  # the probes' threads: the same fake
        return self

    def get_task_instances(self, dag_id, limit, offset):
        self.probed.append((dag_id, limit, offset))
        tasks = self.tasks.get(dag_id, 5)
        if isinstance(tasks, Exception):
            raise tasks
        return {"dag_run_count": self.runs.get(dag_id, 0), "task_instances": [
            {"dag_id": dag_id, "run_id": f"r{run}", "task_id": f"t{task}", "map_index": -1}
            for run in range(limit) for task in range(tasks)]}

    def get_dags(self):
        return [{"dag_id": d, "dag_run_count": self.runs.get(d, 0)} for d in self.dag_ids]

    def get_variables(self):
        from starship_dags import sync_state

        return [{"key": sync_state.variable_key(d), "val": json.dumps(m)} for d, m in self.markers.items()]

    def rest_active_runs(self, dag_id):  # the start's guard: no other migration run
        return []


def _discover(dag_ids, tasks, runs=None, markers=None, full_comparison=False, source=None):
    op = DiscoverDagsOperator(task_id="start", other_dag_id="starship_sync", wait=True, tasks=tasks,
                              full_comparison=full_comparison)
    op.__dict__["source_hook"] = source or _Dags(dag_ids, runs)
    op.__dict__["target_hook"] = _Dags([], markers=markers)

    class _Dag:
        dag_id = "starship_migration"

    return op.execute({"dag": _Dag(), "ti": _Ti()})


def test_dags_are_dealt_out_over_the_history_tasks():
    batches = _discover([f"d{n}" for n in range(7)] + ["starship_sync"], 3)
    assert [[spec["dag_id"] for spec in batch] for batch in batches] == [["d0", "d3", "d6"], ["d1", "d4"], ["d2", "d5"]]
    # fewer DAGs than tasks: one task per DAG, no empty task
    assert [[spec["dag_id"] for spec in batch] for batch in _discover(["a", "b"], "4")] == [["a"], ["b"]]
    assert _discover([], 4) == []
    # each DAG carries the target's version: the history tasks need not ask for it
    assert {spec["target_version"] for batch in batches for spec in batch} == {"2.11.0"}


def test_dags_are_dealt_out_by_the_runs_they_have_to_copy():
    from starship_dags import sync_state

    runs = {"big": 3000, "a": 400, "b": 400, "c": 400, "d": 400, "e": 400, "f": 400, "g": 10}
    names = lambda batches: [[spec["dag_id"] for spec in batch] for batch in batches]  # noqa: E731
    # the big DAG alone; the others about even over the rest (in turn, they would sit with it)
    assert names(_discover(list(runs), 3, runs)) == [["big"], ["a", "c", "e", "g"], ["b", "d", "f"]]
    # since the last sync the big DAG ran 5 more times: by what is left to copy, it is light now
    marker = sync_state.make_marker(source_url="http://source/", run_count=2995, digest="x", pending=[],
                                    selection={})
    batches = _discover(list(runs), 3, runs, markers={"big": marker})
    assert names(batches) == [["a", "d", "g"], ["b", "big", "e"], ["c", "f"]]
    # DAGs with nothing new since the last sync cost about a request each: one task takes them all
    idle = {d: sync_state.make_marker(source_url="http://source/", run_count=400, digest="x", pending=[],
                                      selection={}) for d in "abcdef"}
    assert names(_discover(list(runs), 3, runs, markers=idle)) == [["big"], ["g"], ["a", "b", "c", "d", "e", "f"]]
    # a full comparison ignores the marker: every run is compared again
    assert names(_discover(list(runs), 3, runs, markers={"big": marker}, full_comparison=True))[0] == ["big"]


def test_dags_are_dealt_out_by_their_task_instances_per_run(caplog, capfd):
    from starship_dags.exceptions import StarshipServerError
    from starship_dags.operators.history import DAG_COPY_WEIGHT, PROBE_MIN_RUNS, PROBE_RUNS, dag_weight

    runs = {"wide": 300, "a": 300, "b": 300, "c": 300, "broken": 300, "small": PROBE_MIN_RUNS - 1}
    tasks = {"wide": 40, "a": 2, "b": 2, "c": 2,
             "broken": StarshipServerError("starship_source", "GET", "/api/starship/task_instances", 500, "boom")}
    source = _Dags(list(runs), runs, tasks=tasks)
    batches = _discover(list(runs), 3, runs, source=source)
    names = [[spec["dag_id"] for spec in batch] for batch in batches]
    # by runs alone the wide DAG would share a task with b; by rows (40 task instances per run
    # against 2) it has one to itself
    assert names == [["wide"], ["broken", "c"], ["a", "b", "small"]], names
    per_run = {spec["dag_id"]: spec["tasks_per_run"] for batch in batches for spec in batch}
    # read off a page of the newest runs; not read for a DAG with few runs, nor where the page failed
    assert per_run == {"wide": 40.0, "a": 2.0, "b": 2.0, "c": 2.0, "broken": None, "small": None}
    assert sorted(source.probed) == sorted((d, PROBE_RUNS, 0) for d in ("wide", "a", "b", "c", "broken"))
    logged = capfd.readouterr().out + caplog.text  # Airflow 3 logs through structlog to stdout
    assert "broken: task instances per run not read" in logged and "HTTP 500" in logged
    # a DAG not read weighs as one of 5 task instances per run; one with nothing to copy, little
    assert dag_weight(300, 40.0) == 300 * 41 + DAG_COPY_WEIGHT
    assert dag_weight(300, None) == dag_weight(300, 5)
    assert dag_weight(0, 40.0) < dag_weight(1, 0)


def test_start_reads_the_source_version_once_checks_the_pair_and_passes_it_on():
    """The history tasks take the source's version from their specs; ``start`` reads it once, for the
    version check, busy or idle (an idle sync costs that one request more)."""
    from functools import cached_property

    from starship_dags import sync_state

    class _Counted(_Dags):
        @cached_property  # as the hook's
        def airflow_version(self):
            self.asked = getattr(self, "asked", 0) + 1
            return "2.10.5"

    runs = {"a": 400, "b": 3}
    busy = _Counted(list(runs), runs)
    batches = _discover(list(runs), 2, runs, source=busy)
    assert busy.asked == 1
    assert [spec["source_version"] for batch in batches for spec in batch] == ["2.10.5", "2.10.5"]
    idle = {d: sync_state.make_marker(source_url="http://source/", run_count=n, digest="x", pending=[], selection={})
            for d, n in runs.items()}
    quiet = _Counted(list(runs), runs)
    batches = _discover(list(runs), 2, runs, markers=idle, source=quiet)
    assert quiet.asked == 1
    assert [spec["source_version"] for batch in batches for spec in batch] == ["2.10.5", "2.10.5"]


@pytest.mark.parametrize("source, target", [("2.6.3", "2.11.0"), ("3.3.2", "2.11.0"), ("2.11.0", "3.4.0")])
def test_start_refuses_a_pair_outside_the_matrix_before_anything_else(source, target):
    from starship_dags.versions import UnsupportedVersionError

    src, tgt = _Dags(["a"], {"a": 3}), _Dags([])
    src.airflow_version, tgt.airflow_version = source, target
    src.get_dags = tgt.get_dags = None  # never reached
    op = DiscoverDagsOperator(task_id="start", other_dag_id="starship_sync", wait=True, tasks=2)
    op.__dict__["source_hook"], op.__dict__["target_hook"] = src, tgt
    ti = _Ti()
    with pytest.raises(UnsupportedVersionError, match=f"from Airflow {source} into Airflow {target}"):
        op.execute({"dag": None, "ti": ti})
    assert ti.pushed["refused"].startswith(f"migrating from Airflow {source} into Airflow {target} is not supported")


def test_dealing_keeps_weights_even_and_every_dag_once():
    from starship_dags.operators.history import deal

    specs = [{"dag_id": f"d{n}"} for n in range(9)]
    weights = [90, 10, 50, 50, 40, 30, 20, 10, 10]
    batches = deal(specs, weights, 3)
    loads = [sum(weights[int(s["dag_id"][1:])] for s in batch) for batch in batches]
    assert sorted(s["dag_id"] for batch in batches for s in batch) == [s["dag_id"] for s in specs]
    assert loads == [110, 100, 100]  # 310 over 3: the heaviest first, each to the lightest batch
    assert deal(specs, [1] * 9, 4) == [specs[0::4], specs[1::4], specs[2::4], specs[3::4]]  # equal: in turn
    assert deal([], [], 4) == []


@pytest.mark.parametrize("tasks", [0, "many", None])
def test_a_bad_number_of_history_tasks_is_named(tasks):
    with pytest.raises(ValueError, match="history_tasks must be a whole number of at least 1"):
        _discover(["a"], tasks)


def _batch_task(outcomes):
    """dag_runs over DAGs a, b, c with its comparison replaced: per DAG, ``outcomes`` says what happens
    ("idle", "work": runs to copy XComs for, "fail": a refused run, or an exception to raise)."""
    op = DagRunsMigrationOperator(
        task_id="dag_runs", source_dags=[{"dag_id": d} for d in outcomes], artifacts=["xcoms"],
        children={"h.xcoms": True, "h.validate": True}, artifact_children=["h.xcoms"],
    )
    done = []

    def migrate(summary, context):
        dag_id = op.dag_to_migrate
        done.append(dag_id)
        outcome = outcomes[dag_id]
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "fail":
            summary.add("failed", "run 'r'", "refused")
        if outcome in ("work", "fail"):
            op.plan = {"dag_id": dag_id, "idle": False, "artifact_run_ids": ["r"]}
        summary.created = 1

    op.migrate = migrate
    return op, done


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
    assert "skipped_tasks" not in plans["a"] and "skipped_tasks" not in plans["b"]
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
    assert seen == [("b", plans["plans"]["b"]), ("c", None)]
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
    assert set(plans) == {"a", "b"} and "skipped_tasks" not in plans["b"]


def test_a_history_task_is_labelled_with_its_dags():
    from types import SimpleNamespace

    import jinja2

    from starship_dags.operators.history import MAP_INDEX_TEMPLATE

    def label(dag_ids):
        task = SimpleNamespace(source_dags=[{"dag_id": d, "marker": None} for d in dag_ids])
        return jinja2.Environment().from_string(MAP_INDEX_TEMPLATE).render(task=task)

    assert label(["a", "b_c"]) == "a, b_c"
    long = label([f"dag_number_{n}" for n in range(100)])
    assert long.startswith("dag_number_0, dag_number_1, ") and long.endswith("...") and len(long) <= 250


def test_the_pushed_plans_leave_out_what_only_dag_runs_reads():
    op, _ = _batch_task({"a": "work"})
    original = op.migrate

    def migrate(summary, context):
        original(summary, context)
        op.plan.update(run_ids=["r"] * 3, existing_run_ids=["r"], refused_run_ids=[], source_cutoff=None)

    op.migrate = migrate
    ti = _Ti()
    op.execute({"ti": ti})
    pushed = ti.pushed["return_value"]["plans"]["a"]
    assert set(pushed) == {"dag_id", "idle", "artifact_run_ids", "source_cutoff", "skipped_tasks"}
