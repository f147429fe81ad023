"""Injected faults between the migration and real servers: the target ends with full parity.

A :class:`FaultProxy` sits in front of the source and one in front of the target; the migration
reaches both only through them. Each scenario migrates settings and the history of two DAGs
(a scheduler-made mapped DAG and a bulk DAG of 1,250 runs) into an empty target, with faults
armed, then checks field-by-field parity, no duplicates, that every fault was really injected,
and that each retry was logged with its reason. The SIGKILL scenario is in test_history.
"""

from __future__ import annotations

import threading

import pytest

from tests.integration import corpus, rig
from tests.integration.faultproxy import Fault, FaultProxy
from tests.integration.parity import assert_no_duplicates_or_orphans, assert_parity, reset_history, snapshot

DAGS = ("hist_mapped", "bulk_a")
CONF = {"resources": ["pools", "variables", "connections", "dag_history"], "dag_ids": list(DAGS),
        "conflict_policy": "overwrite"}
SRC_RUNS = r"^GET /api/starship/dag_runs\?"
SRC_TIS = r"^GET /api/starship/task_instances\?"
TGT_RUNS = r"^POST /api/starship/dag_runs"
TGT_TIS = r"^POST /api/starship/task_instances$"
TGT_VARS = r"^POST /api/starship/variables"


def scenario_faults(name: str, target: rig.AirflowServer) -> tuple[list[Fault], list[Fault], dict]:
    """(source faults, target faults, extra for both connections) of one scenario."""
    if name == "5xx-bursts":
        return ([Fault(SRC_TIS, "status", status=500, times=1), Fault(SRC_TIS, "status", status=502, times=1),
                 Fault(SRC_RUNS, "status", status=503, times=2)],
                [Fault(TGT_TIS, "status", status=503, times=2, skip=1), Fault(TGT_RUNS, "status", status=502)], {})
    if name == "429-retry-after":
        return ([Fault(SRC_RUNS, "status", status=429, retry_after="2", times=2)],
                [Fault(TGT_VARS, "status", status=429, retry_after="1", times=1)], {})
    if name == "connection-resets":
        # After forwarding: the target stored the rows, only the answer was lost.
        return ([Fault(SRC_TIS, "reset", times=2)],
                [Fault(TGT_TIS, "reset", after_forward=True, skip=1), Fault(TGT_RUNS, "reset", after_forward=True),
                 Fault(TGT_VARS, "reset", after_forward=True, skip=2)], {})
    if name == "slower-than-read-timeout":
        # a read timeout that no answer of a loaded 2-core machine reaches, only the delayed ones
        return ([Fault(SRC_TIS, "slow", delay=16, skip=1)],
                [Fault(TGT_TIS, "slow", delay=16, skip=2)], {"read_timeout": 8})
    if name == "truncated-bodies":
        return ([Fault(SRC_RUNS, "truncate"), Fault(SRC_TIS, "truncate", skip=1),
                 Fault(r"^GET /api/starship/variables", "truncate")], [], {})
    if name == "target-restarted":
        def restart() -> None:  # stop the target now; it comes back while the migration retries
            target.stop_web()
            threading.Thread(target=target.start_web, daemon=True).start()

        return [], [Fault(TGT_TIS, "hook", action=restart, skip=1)], {}
    raise ValueError(name)


SCENARIOS = ("5xx-bursts", "429-retry-after", "connection-resets", "slower-than-read-timeout", "truncated-bodies",
             "target-restarted")
#: Airflow 3 targets get the two scenarios that exercise the target side hardest.
CASES = [pytest.param("2.11", s, id=f"af2.11-{s}") for s in SCENARIOS] + [
    pytest.param("3.3", s, id=f"af3.3-{s}") for s in ("connection-resets", "target-restarted")]


@pytest.fixture
def proxies(history_source, target):
    source_proxy = FaultProxy(history_source.url).start()
    target_proxy = FaultProxy(target.url).start()
    yield source_proxy, target_proxy
    source_proxy.stop()
    target_proxy.stop()


@pytest.fixture
def empty_target(history_source, target):
    reset_history(target)
    rig.reset_keyed_resources(history_source)
    rig.reset_keyed_resources(target)
    rig.seed(history_source, corpus.spec())
    return history_source, target


def through(proxies, source, target, extra: dict) -> dict[str, dict[str, str]]:
    source_proxy, target_proxy = proxies
    return {
        "source_conn": source.connection_env("starship_source", host=source_proxy.url, extra=extra or None),
        "target_conn": target.connection_env("starship_target", host=target_proxy.url, extra=extra or None),
    }


def assert_settings_parity(source: rig.AirflowServer, target: rig.AirflowServer) -> None:
    src, tgt = snapshot(source), snapshot(target)
    tgt["variables"] = {k: v for k, v in tgt["variables"].items() if not k.startswith("starship_dags.sync.")}
    for resource in src:
        assert tgt[resource] == src[resource], f"{resource} differ"


@pytest.mark.parametrize("target, scenario", CASES, indirect=["target"], scope="session")
def test_fault_scenario_ends_in_parity(empty_target, proxies, scenario):
    source, target = empty_target
    source_faults, target_faults, extra = scenario_faults(scenario, target)
    proxies[0].arm(*source_faults)
    proxies[1].arm(*target_faults)

    result = rig.run_migration_dag(target, source, CONF, **through(proxies, source, target, extra))
    armed = [f for f in (*source_faults, *target_faults)]
    assert all(f.injected == f.times for f in armed), [(f.pattern, f.kind, f.injected) for f in armed]
    rerun = None
    if result.run_state != "success":
        # At most one rerun is allowed, without faults; it must repair everything.
        proxies[0].arm()
        proxies[1].arm()
        rerun = rig.run_migration_dag(target, source, CONF, **through(proxies, source, target, extra))
        assert rerun.run_state == "success", f"first run:\n{result.explain()}\nrerun:\n{rerun.explain()}"

    retries = [line for line in result.output.splitlines() if "Retrying " in line]
    assert retries, result.explain()
    assert all(" after " in line and "attempt " in line for line in retries), retries[:3]
    if scenario != "target-restarted":  # these faults are all within the retry budget
        assert rerun is None, result.explain()
        assert len(retries) <= 3 * sum(f.times for f in armed), retries
    if scenario == "429-retry-after":  # the server's Retry-After sets the wait
        assert any("after HTTP 429" in line and "waiting 2.0 s" in line for line in retries), retries
    if scenario == "connection-resets" and target.major == 2:
        # the retried batches met their own rows (409) and were checked on the target, not failed
        assert "may have stored it; checking the target" in result.output, result.explain()
    assert_parity(source, target, dags=DAGS)
    assert_no_duplicates_or_orphans(source, target)
    assert_settings_parity(source, target)


@pytest.mark.parametrize("target", ["2.11"], indirect=True, scope="session")
def test_fault_outlasting_the_retry_budget_fails_clearly(empty_target, proxies):
    source, target = empty_target
    proxies[1].arm(Fault(TGT_RUNS, "status", status=503, times=1000))
    conns = through(proxies, source, target, {"retries": 3, "retry_max_wait": 1})

    result = rig.run_migration_dag(target, source, CONF, **conns)
    assert result.run_state == "failed"
    assert proxies[1].count(TGT_RUNS) <= 3 * len(DAGS)  # bounded: 3 attempts per call at most
    failure = [line for line in result.output.splitlines()
               if "POST /api/starship/dag_runs on connection 'starship_target' failed" in line]
    assert failure, result.explain()
    assert "'starship_target' failed: HTTP 503" in failure[0] and "gave up after 3 attempts" in failure[0], failure[0]
    # The settings went in meanwhile; the report names what failed.
    assert result.task_states["settings.variables"] == "success"

    proxies[1].arm()
    fixed = rig.run_migration_dag(target, source, CONF, **conns)
    assert fixed.run_state == "success", fixed.explain()
    assert_parity(source, target, dags=DAGS)
    assert_no_duplicates_or_orphans(source, target)
    assert_settings_parity(source, target)
