"""Airflow 3.3 -> Airflow 3.3: an Airflow 3 source holding real history (copied into it from the
Airflow 2.11 source by the package itself), migrated into a fresh Airflow 3.3 target."""

from __future__ import annotations

import pytest

from tests.integration import rig
from tests.integration.test_history import HISTORY, assert_no_duplicates_or_orphans, assert_parity


@pytest.fixture(scope="module")
def af3_source(envs, history_source):
    server = rig.AirflowServer("af3source", envs["3.3"], dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS]).start()
    try:
        server.cli("dags", "reserialize")
        filled = rig.run_migration_dag(server, history_source, HISTORY)
        assert filled.run_state == "success", filled.explain()
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
