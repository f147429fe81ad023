"""Session fixtures: one Airflow 2.11 source, and targets on Airflow 2.11 and 3.3 (parametrized)."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.integration import history_seed, rig
from tests.integration.parity import reset_history


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def envs() -> dict[str, rig.AirflowEnv]:
    if not rig.pg_reachable():
        pytest.fail(f"PostgreSQL is not reachable at {rig.PG_HOST}:{rig.PG_PORT}; integration tests need it")
    built = {version: rig.AirflowEnv(version).ensure() for version in rig.AIRFLOW_VERSIONS}
    for env in built.values():
        env.install_project()
    return built


@pytest.fixture(scope="session")
def source(envs):
    server = rig.AirflowServer("source", envs["2.11"], astro_logs=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["2.11", "3.3"], ids=["target-af2.11", "target-af3.3"])
def target(request, envs):
    server = rig.AirflowServer(f"target{request.param}", envs[request.param],
                               dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS], astro_logs=True).start()
    server.cli("dags", "reserialize")  # the target knows (Airflow 3: has versions of) the source's DAGs
    yield server
    server.stop()


@pytest.fixture(scope="session")
def history_source(source):
    """The source with real scheduler runs of history_seed.REAL_DAGS, then 5,000 bulk runs."""
    shutil.copy(rig.HISTORY_DAGS, source.dags_folder)
    (source.dags_folder / "source_only.py").write_text(history_seed.SOURCE_ONLY_DAG)
    source.cli("dags", "reserialize")
    for dag_id in history_seed.REAL_DAGS:
        source.cli("dags", "unpause", dag_id)
    source.cli("dags", "trigger", "hist_mapped", "-c", json.dumps({"nested": {"ключ": {"deep": [1, {"x": "日本"}]}}}))
    source.cli("dags", "trigger", "hist_failing", "-c", json.dumps({"ü": ["✓", 1, None], "emoji": "🚀"}))
    scheduler = source.start_scheduler()
    expected_runs = {"hist_mapped": 4, "hist_retry": 2, "hist_failing": 1}
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        done = dict(source.sql(
            "SELECT dag_id, count(*) FROM dag_run WHERE state IN ('success', 'failed') GROUP BY dag_id"))
        if all(done.get(d, 0) >= n for d, n in expected_runs.items()):
            break
        time.sleep(3)
    source.stop_processes(scheduler)
    assert all(done.get(d, 0) >= n for d, n in expected_runs.items()), done
    for dag_id in history_seed.REAL_DAGS:
        source.cli("dags", "pause", dag_id)
    seeded = json.loads(source.python(history_seed.SCRIPT, stdin=json.dumps({
        "dags": list(history_seed.BULK_DAGS), "first": 0, "runs": history_seed.BULK_RUNS,
        "tasks": list(history_seed.BULK_TASKS), "queued": [history_seed.QUEUED_RUN],
    })))
    assert seeded["runs"] == history_seed.BULK_RUNS * len(history_seed.BULK_DAGS)
    source.python(history_seed.SCRIPT, stdin=json.dumps({
        "dags": [history_seed.SOURCE_ONLY_DAG_ID], "first": 0, "runs": 3, "tasks": ["only"]}))
    return source


@pytest.fixture
def history_target(history_source, target):
    """A target without any history of the source's DAGs and without sync markers."""
    reset_history(target)
    return history_source, target
