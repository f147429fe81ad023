"""Session fixtures: one Airflow 2.11 source, and targets on Airflow 2.11 and 3.3 (parametrized)."""

from __future__ import annotations

import json

import pytest

from tests.integration import history_seed, rig, scheduled
from tests.integration.parity import reset_history

GROUP = pytest.StashKey[str]()


#: The integration tests' groups (``pytest -n 2 --dist loadgroup``, as scripts/test.sh runs them), started in
#: this order: the tests on the session's shared servers (the 2.11 source and the targets) stay in one
#: process, which starts those servers once; the version matrix, the other long group, goes to the other.
SHARED_GROUP = "shared-servers"
FIRST_GROUPS = (SHARED_GROUP, "test_matrix")
SHARED_SERVERS = {"source", "target", "history_source"}


def pytest_itemcollected(item):  # before pytest-xdist reads the groups (its own collection hook)
    item.add_marker(pytest.mark.integration)
    group = SHARED_GROUP if SHARED_SERVERS & set(item.fixturenames) else item.module.__name__.rsplit(".", 1)[-1]
    item.add_marker(pytest.mark.xdist_group(group))
    item.stash[GROUP] = group


@pytest.hookimpl(trylast=True)  # after pytest has ordered the tests by the targets' parameter
def pytest_collection_modifyitems(items):
    rank = {group: place for place, group in enumerate(FIRST_GROUPS)}
    # stable: each group keeps its order; the unit tests (no group) last
    items.sort(key=lambda item: rank.get(item.stash.get(GROUP, None), len(rank)))


class Envs(dict):
    """Airflow virtual environments by minor, built (or taken from the cache) and given this working
    tree's package the first time a test asks for one: a run of some tests builds only theirs."""

    def __missing__(self, version: str) -> rig.AirflowEnv:
        env = rig.AirflowEnv(version).ensure()
        env.install_project()
        self[version] = env
        return env


@pytest.fixture(scope="session")
def envs() -> Envs:
    if not rig.pg_reachable():
        pytest.fail(f"PostgreSQL is not reachable at {rig.PG_HOST}:{rig.PG_PORT}; integration tests need it")
    return Envs()


@pytest.fixture(scope="session")
def source(envs):
    server = rig.AirflowServer("source", envs["2.11"], astro_logs=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["2.11", "3.3"], ids=["target-af2.11", "target-af3.3"])
def target(request, envs):
    server = rig.AirflowServer(f"target{request.param}", envs[request.param],
                               dags=[rig.MIGRATION_DAG, rig.RESET_TARGET_DAG, rig.HISTORY_DAGS],
                               astro_logs=True).start()
    server.cli("dags", "reserialize")  # the target knows (Airflow 3: has versions of) the source's DAGs
    yield server
    server.stop()


@pytest.fixture(scope="session")
def history_source(source):
    """The source with real scheduler runs of history_seed.REAL_DAGS, then 5,000 bulk runs."""
    (source.dags_folder / "source_only.py").write_text(history_seed.SOURCE_ONLY_DAG)
    scheduled.make(source)
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
