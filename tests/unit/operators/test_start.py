"""start: the DAGs dealt out over the history tasks, and the pair of versions checked first."""

from __future__ import annotations

import json

import pytest

from starship_dags.exceptions import (
    StarshipServerError,
)
from starship_dags.operators.start import DiscoverDagsOperator
from tests.unit.fakes import Ti as _Ti


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
    from starship_dags.operators.start import (
        DAG_COPY_WEIGHT,
        PROBE_MIN_RUNS,
        PROBE_RUNS,
        dag_weight,
    )

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
    from starship_dags.operators.start import deal

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
