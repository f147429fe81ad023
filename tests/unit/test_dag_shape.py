"""The migration DAG's edges that skipping depends on: a skipped task counts as done, so no order
may pass through one."""

from __future__ import annotations

from starship_dags.dags import build_migration_dag

HISTORY_TASKS = ["history.dag_runs", "history.xcoms", "history.task_logs", "history.validate"]


def test_dag_runs_is_directly_upstream_of_every_task_it_may_skip():
    dag = build_migration_dag()
    runs = dag.get_task("history.dag_runs")
    assert set(runs.children) == set(HISTORY_TASKS[1:]) <= runs.downstream_task_ids
    assert runs.artifact_children == {"history.xcoms", "history.task_logs"}


def test_each_per_dag_task_follows_every_earlier_one_and_the_end_waits_for_all():
    dag = build_migration_dag()
    for position, task_id in enumerate(HISTORY_TASKS):
        assert set(HISTORY_TASKS[:position]) == dag.get_task(task_id).upstream_task_ids & set(HISTORY_TASKS), task_id
    assert set(HISTORY_TASKS) <= dag.get_task("cutover_unpause_target").upstream_task_ids


def test_the_copy_tasks_know_their_order_for_the_sync_marker():
    dag = build_migration_dag()
    copies = HISTORY_TASKS[:3]
    for position, task_id in enumerate(copies):
        task = dag.get_task(task_id)
        assert (task.earlier, task.later) == (copies[:position], copies[position + 1:]), task_id
