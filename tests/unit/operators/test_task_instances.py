"""Task instances and retry history of the planned runs: what is looked up, pages, full bodies."""

from __future__ import annotations

import json
from unittest import mock

from starship_dags.hooks.batching import encode_item
from starship_dags.hooks.starship import StarshipHook
from starship_dags.operators import rows
from starship_dags.operators.dag_runs import DagRunsMigrationOperator
from starship_dags.operators.task_instances import copy_children
from starship_dags.plan import DagPlan
from starship_dags.report import Summary
from tests.unit.fakes import ti_row as _ti


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
        for page_rows in pages:
            runs += [list(page_rows)] + [[]] * (self.RUNS_PER_PAGE - 1)
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


def _children_run(plan, hooks, **spec):
    """dag_runs' second half: the task instances and retry history of the runs ``plan`` names
    (``spec``: more of the DAG's entry in start's list)."""

    op = DagRunsMigrationOperator(task_id="dag_runs", source_dags=[{"dag_id": "d", **spec}])
    op.source_dag = {"dag_id": "d", **spec}
    op.plan = DagPlan("d", **{"refused_run_ids": [], **plan})
    op.__dict__["source_hook"] = op.__dict__["target_hook"] = hooks
    written = []

    def write(op, summary, kind, batch, hold_tail=False):
        written.extend((rows.RESOURCES[kind], r["run_id"], r["task_id"]) for r in batch)
        return []

    with mock.patch.object(rows, "write", write):
        copy_children(op, Summary(resource="dag_runs"), context={})
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


def test_rows_of_several_pages_go_in_full_request_bodies(mocker, conn_env):

    from starship_dags.operators.dag_runs import DagRunsMigrationOperator
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
    op.source_dag, op.plan = {"dag_id": "d"}, DagPlan("d", **plan)
    op.__dict__["source_hook"], op.__dict__["target_hook"] = _TiPages(pages), target
    copy_children(op, Summary(resource="dag_runs"), context={})
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


def test_the_first_retry_history_page_is_sized_from_the_task_instances_earlier_tries():
    from starship_dags.hooks.paging import (
        FIRST_PAGE_RUNS,
        MAX_PAGE_RUNS,
        PAGE_ROWS,
        RunPager,
    )

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
    from starship_dags.hooks.paging import PAGE_ROWS

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
