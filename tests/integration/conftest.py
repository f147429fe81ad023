"""Session fixtures: one Airflow 2.11 source, and targets on Airflow 2.11 and 3.3 (parametrized)."""

from __future__ import annotations

import pytest

from tests.integration import rig


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
    server = rig.AirflowServer("source", envs["2.11"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["2.11", "3.3"], ids=["target-af2.11", "target-af3.3"])
def target(request, envs):
    server = rig.AirflowServer(f"target{request.param}", envs[request.param],
                               dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS]).start()
    server.cli("dags", "reserialize")  # the target knows (Airflow 3: has versions of) the source's DAGs
    yield server
    server.stop()
