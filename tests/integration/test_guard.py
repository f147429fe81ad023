"""The run's first task on real servers: the scheduled sync stands aside while a manual migration
is queued on the target, and every later task, the mapped history included, is skipped, not
failed (the history's input comes from that first task)."""

from __future__ import annotations

import shutil
import time

from tests.integration import rig


def test_the_sync_stands_aside_while_a_manual_migration_is_queued(source, target):
    if not (target.dags_folder / rig.SYNC_DAG.name).exists():
        shutil.copy(rig.SYNC_DAG, target.dags_folder)
        target.cli("dags", "reserialize")
    manual = f"manual__guard_{int(time.time())}"
    target.cli("dags", "trigger", "starship_migration", "-r", manual)  # no scheduler here: it stays queued
    try:
        result = rig.run_migration_dag(target, source, {"resources": ["pools", "dag_history"]}, dag_id="starship_sync")
    finally:  # leave no trace: other tests look for the newest run of the migration DAG
        target.sql("DELETE FROM task_instance WHERE dag_id = 'starship_migration' AND run_id = %s", (manual,))
        target.sql("DELETE FROM dag_run WHERE dag_id = 'starship_migration' AND run_id = %s", (manual,))

    assert result.run_state == "success", result.explain()
    states = result.task_states
    assert states.pop("report") == "success", result.explain()
    assert states["start"] == "skipped" and states["history.dag_runs"] == "skipped", states
    assert {t: s for t, s in states.items() if s != "skipped"} == {}, states
    assert manual in result.report["skipped"], result.report
    assert result.summaries == {}  # nothing was read or written
