"""The migration DAG's edges that skipping depends on: a skipped task counts as done, so no order
may pass through one."""

from __future__ import annotations

from starship_dags.dags import build_migration_dag

HISTORY_TASKS = ["history.dag_runs", "history.task_instances", "history.xcoms", "history.task_logs",
                 "history.task_instance_history", "history.validate"]


def test_dag_runs_is_directly_upstream_of_every_task_it_may_skip():
    dag = build_migration_dag()
    runs = dag.get_task("history.dag_runs")
    assert set(runs.children) == set(HISTORY_TASKS[1:]) <= runs.downstream_task_ids
    assert runs.artifact_children == {"history.xcoms", "history.task_logs"}


def test_retry_history_waits_for_task_instances_and_the_end_waits_for_every_per_dag_task():
    dag = build_migration_dag()
    assert "history.task_instances" in dag.get_task("history.task_instance_history").upstream_task_ids
    assert set(HISTORY_TASKS) <= dag.get_task("cutover_unpause_target").upstream_task_ids
