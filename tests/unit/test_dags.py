"""The DAGs' shape: what may skip what, orders that hold without skipped tasks."""

from __future__ import annotations

import pytest

from starship_dags.compat import AIRFLOW_MAJOR
from starship_dags.dags import build_migration_dag

HISTORY_TASKS = ["history.dag_runs", "history.xcoms_logs_notes", "history.validate"]


def test_dag_runs_is_directly_upstream_of_every_task_it_may_skip():
    dag = build_migration_dag()
    runs = dag.get_task("history.dag_runs")
    assert set(runs.children) == set(HISTORY_TASKS[1:]) <= runs.downstream_task_ids
    assert runs.artifact_children == {"history.xcoms_logs_notes"}


def test_each_per_dag_task_follows_every_earlier_one_and_the_end_waits_for_all():
    dag = build_migration_dag()
    for position, task_id in enumerate(HISTORY_TASKS):
        assert set(HISTORY_TASKS[:position]) == dag.get_task(task_id).upstream_task_ids & set(HISTORY_TASKS), task_id
    assert set(HISTORY_TASKS) <= dag.get_task("cutover_unpause_target").upstream_task_ids


def test_the_copy_tasks_know_their_order_for_the_sync_marker():
    dag = build_migration_dag()
    copies = HISTORY_TASKS[:2]
    for position, task_id in enumerate(copies):
        task = dag.get_task(task_id)
        assert (task.earlier, task.later) == (copies[:position], copies[position + 1:]), task_id


def test_the_start_is_directly_upstream_of_every_task_its_guard_may_skip():
    dag = build_migration_dag()
    guard = dag.get_task("start")
    assert guard.inherits_from_skipmixin  # Airflow 3's scheduler reads its skip list only then
    skippable = {"settings.pools", "settings.variables", "settings.connections", "settings.environment",
                 "validate_settings", "cutover_pause_source", "cutover_unpause_target",
                 # the history's later tasks, through the group's input, before the group expands
                 "history.xcoms_logs_notes", "history.validate"}
    assert set(guard.children) == skippable <= guard.downstream_task_ids
    runs = dag.get_task("history.dag_runs")
    for task_id in runs.children:  # both skip them on the same condition
        assert guard.children[task_id] == runs.children[task_id], task_id
    assert guard.children["cutover_pause_source"] == guard.children["cutover_unpause_target"]  # the cutover box


def test_no_order_passes_through_a_task_the_guard_may_skip():
    dag = build_migration_dag()
    assert dag.roots == [dag.get_task("start")]
    runs = dag.get_task("history.dag_runs")
    # runs after the start whether or not the cutover's pause ran; skipped when both were skipped
    assert {"start", "cutover_pause_source"} == runs.upstream_task_ids
    assert runs.trigger_rule == "none_failed_min_one_success"
    report = dag.get_task("report")
    assert {"validate_settings", "cutover_unpause_target", *HISTORY_TASKS} <= report.upstream_task_ids
    assert report.trigger_rule == "all_done"


def test_the_sync_has_no_cutover_so_its_guard_always_skips_pause_and_unpause():
    dag = build_migration_dag("starship_sync", sync=True)
    children = dag.get_task("start").children
    assert "default(false)" in children["cutover_pause_source"] and "default(false)" in children["cutover_unpause_target"]


def _reaches(dag, start: str, avoided: set[str]) -> set[str]:
    """The tasks after ``start``, following only edges through tasks that are not ``avoided``."""
    seen, todo = set(), [start]
    while todo:
        for task_id in dag.get_task(todo.pop()).downstream_task_ids:
            if task_id not in seen:
                seen.add(task_id)
                if task_id not in avoided:
                    todo.append(task_id)
    return seen


def test_every_order_holds_without_the_tasks_that_may_be_skipped_before_they_start():
    """A task skipped before it starts counts as done at once. So when two tasks both run, the
    one that comes first must still come first by edges that avoid every other such task."""
    for dag in (build_migration_dag(), build_migration_dag("starship_sync", sync=True)):
        skippable = set(dag.get_task("start").children) | set(dag.get_task("history.dag_runs").children)
        assert len(skippable) == 9
        for first in dag.task_ids:
            for later in _reaches(dag, first, set()):
                kept = _reaches(dag, first, skippable - {first, later})
                assert later in kept, f"{dag.dag_id}: {first} comes before {later} only through a skippable task"


def test_airflow_3_scheduler_reads_the_start_skip_list():
    """The start task leaves its skip list in XCom and goes on (its value is the history's input);
    Airflow 3's scheduler reads that list only from a serialized task marked as one that skips."""

    if AIRFLOW_MAJOR < 3:
        pytest.skip("Airflow 2 reads the skip list of any upstream task")
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_migration_dag()))
    assert dag.get_task("start").inherits_from_skipmixin
    assert not dag.get_task("history.dag_runs").inherits_from_skipmixin  # it raises DownstreamTasksSkipped
