"""Airflow 3.3 -> Airflow 3.3: an Airflow 3 source holding real history (copied into it from the
Airflow 2.11 source by the package itself), migrated into a fresh Airflow 3.3 target."""

from __future__ import annotations

import pytest

from tests.integration import rig
from tests.integration.test_artifacts import ARTIFACTS, artifact_totals, log_lines, log_notes, target_xcom
from tests.integration.test_history import HISTORY, assert_no_duplicates_or_orphans, assert_parity


@pytest.fixture(scope="module")
def af3_source(envs, history_source):
    server = rig.AirflowServer("af3source", envs["3.3"], dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS]).start()
    try:
        server.cli("dags", "reserialize")
        filled = rig.run_migration_dag(server, history_source, HISTORY)
        assert filled.run_state == "success", filled.explain()
        artifacts = rig.run_migration_dag(server, history_source, ARTIFACTS)  # XComs and logs as well
        assert artifacts.run_state == "success", artifacts.explain()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def af3_target(envs):
    server = rig.AirflowServer("af3target", envs["3.3"], dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS]).start()
    try:
        server.cli("dags", "reserialize")
        yield server
    finally:
        server.stop()


def test_airflow3_source_into_airflow3_target(af3_source, af3_target):
    first = rig.run_migration_dag(af3_target, af3_source, HISTORY)
    assert first.run_state == "success", first.explain()
    assert_parity(af3_source, af3_target)
    assert_no_duplicates_or_orphans(af3_source, af3_target)
    ids = "SELECT id::text FROM task_instance WHERE dag_id LIKE 'hist%%' ORDER BY 1"
    assert af3_target.sql(ids) == af3_source.sql(ids)  # Airflow 3 ids are kept, not regenerated
    again = rig.run_migration_dag(af3_target, af3_source, HISTORY)
    assert again.run_state == "success", again.explain()
    assert sum(s["target_writes"] for s in again.summaries.values()) == 0


def test_xcoms_and_logs_from_an_airflow3_source(af3_source, af3_target):
    """Airflow 3's Starship serves neither XComs nor logs: both come through its REST API."""
    result = rig.run_migration_dag(af3_target, af3_source, ARTIFACTS)
    assert result.run_state == "success", result.explain()
    notes = log_notes(result)
    assert notes and all("REST API" in n.split(",")[0] for n in notes), notes
    keys = af3_source.sql("SELECT dag_id, run_id, task_id, map_index, key FROM xcom WHERE dag_id LIKE 'hist%%'")
    assert len(keys) >= 15
    for key in keys:
        assert target_xcom(af3_target, tuple(key)) == target_xcom(af3_source, tuple(key)), key
    assert artifact_totals(result, "xcoms")["created"] == len(keys)
    # Logs that the Airflow 3 source itself can show (its unmapped task instances' tries).
    tries = af3_source.sql("SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance "
                           "WHERE dag_id LIKE 'hist%%' AND map_index < 0 AND try_number > 0")
    compared = 0
    for dag_id, run_id, task_id, map_index, last in tries:
        for try_number in range(1, last + 1):
            expected = log_lines(af3_source, dag_id, run_id, task_id, map_index, try_number)
            assert expected
            assert log_lines(af3_target, dag_id, run_id, task_id, map_index, try_number) == expected
            compared += 1
    assert compared >= 8
