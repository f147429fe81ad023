"""Pools, variables and connections through the real migration DAG, source Airflow 2.11 into 2.11 and 3.3."""

from __future__ import annotations

import time

import pytest

from tests.integration import corpus, rig
from tests.integration.parity import FIELDS, snapshot

SETTINGS = ("settings.pools", "settings.variables", "settings.connections")
# every task that reads the source when only the settings are selected
SOURCE_READERS = (*SETTINGS, "settings.environment", "validate_settings")

def assert_same(source: dict, target: dict, *, except_keys: dict[str, set] | None = None) -> None:
    except_keys = except_keys or {}
    for resource in FIELDS:
        wanted = {k: v for k, v in source[resource].items() if k not in except_keys.get(resource, set())}
        got = {k: v for k, v in target[resource].items() if k in wanted}
        assert got == wanted, f"{resource} differ"


@pytest.fixture
def fresh(source, target):
    """Empty target (default_pool at 128 slots), source seeded with the corpus."""
    rig.reset_keyed_resources(source)
    rig.reset_keyed_resources(target)
    rig.seed(source, corpus.spec())
    return source, target


def migrate(source, target, source_conn=None, **conf) -> rig.DagTestResult:
    conf.setdefault("resources", list(FIELDS))  # history has its own tests
    result = rig.run_migration_dag(target, source, conf, source_conn=source_conn)
    secrets = [*corpus.SECRETS.values(), rig.ADMIN_PASSWORD]
    logs = result.output + rig.task_log_text(target)
    leaked = [s for s in secrets if s in logs]
    assert not leaked, f"secrets in task logs: {len(leaked)} of {len(secrets)}"
    return result


def test_fresh_target_skip_keeps_target_items(fresh):
    source, target = fresh
    rig.seed(target, {"variables": [{"key": "plain", "val": "the target's own"}]})
    logins_before = source.login_count()

    # Without the shared login cache, to see that each task logs in once and reuses its session.
    result = migrate(source, target, source.connection_env("starship_source", extra={"session_cache": False}))
    logins = source.login_count() - logins_before

    assert result.run_state == "success", result.explain()
    # one web login per task that reads the Airflow 2 source, not one per call
    assert 1 <= logins <= len(SOURCE_READERS)
    pools, variables, conns = (result.summaries[t] for t in SETTINGS)
    assert variables["created"] == len(corpus.VARIABLES) - 1
    assert variables["skipped"] == 1 and variables["skipped_items"][0].startswith("variable 'plain'")
    assert pools["skipped"] == 1 and "default_pool" in pools["skipped_items"][0]
    assert pools["created"] == len(corpus.POOLS) - 1
    assert conns["created"] == len(corpus.CONNECTIONS) and conns["failed"] == 0
    src, tgt = snapshot(source), snapshot(target)
    assert_same(src, tgt, except_keys={"variables": {"plain"}, "pools": {"default_pool"}})
    assert tgt["variables"]["plain"]["val"] == "the target's own"
    assert tgt["pools"]["default_pool"]["slots"] == 128


def test_overwrite_then_idle_rerun(fresh):
    source, target = fresh
    own_pool = {"name": "the target's own", "slots": 3, "description": "not on the source", "include_deferred": False}
    small = {**corpus.POOLS[1], "slots": 70, "description": "the target's", "include_deferred": True}
    rig.seed(target, {"variables": [{"key": "plain", "val": "the target's own"}], "pools": [own_pool, small]})
    target.sql("UPDATE slot_pool SET description = 'the target''s default' WHERE pool = 'default_pool'")

    first = migrate(source, target, conflict_policy="overwrite")
    assert first.run_state == "success", first.explain()
    assert first.summaries["settings.variables"]["updated"] == 1
    # default_pool: 128 -> 64 slots; "small": every field
    assert first.summaries["settings.pools"]["updated"] == 2
    assert first.summaries["settings.pools"]["target_writes"] == 3  # one PATCH per pool, one POST: nothing deleted
    assert snapshot(target)["pools"]["the target's own"] == own_pool  # a pool only the target has stays
    assert_same_but_default_description(source, target)

    again = migrate(source, target, conflict_policy="overwrite")
    assert again.run_state == "success", again.explain()
    for task, resource in zip(SETTINGS, ("pools", "variables", "connections")):
        summary = again.summaries[task]
        assert (summary["created"], summary["updated"], summary["failed"]) == (0, 0, 0), summary
        assert summary["unchanged"] >= len(getattr(corpus, resource.upper())), summary
        assert summary["target_writes"] == 0, summary
    assert_same_but_default_description(source, target)


def assert_same_but_default_description(source, target) -> None:
    """Parity, except that an Airflow 3 target keeps its own description of default_pool (its REST
    API refuses to change it), which must then be the one it had."""
    src, tgt = snapshot(source), snapshot(target)
    if target.major >= 3:
        assert tgt["pools"]["default_pool"]["description"] == "the target's default"
        tgt["pools"]["default_pool"]["description"] = src["pools"]["default_pool"]["description"]
    assert_same(src, tgt)


def test_source_edits_fail_then_overwrite(fresh):
    source, target = fresh
    assert migrate(source, target, conflict_policy="overwrite").run_state == "success"
    edited_var = {**corpus.VARIABLES[0], "val": "edited on the source"}
    edited_conn = {**corpus.CONNECTIONS[0], "password": corpus.SECRETS["conn_password"] + "-rotated"}
    rig.seed(source, {"variables": [edited_var], "connections": [edited_conn]})
    before = snapshot(target)

    failing = migrate(source, target, conflict_policy="fail")
    assert failing.run_state == "failed"
    assert failing.task_states["settings.variables"] == "failed"
    assert failing.task_states["settings.connections"] == "failed"
    assert failing.task_states["settings.pools"] == "success"
    assert "variable 'plain'" in failing.output and "connection 'pg_main'" in failing.output
    assert snapshot(target) == before  # nothing written for the differing items

    fixed = migrate(source, target, conflict_policy="overwrite")
    assert fixed.run_state == "success", fixed.explain()
    assert fixed.summaries["settings.variables"]["updated"] == 1
    assert fixed.summaries["settings.connections"]["updated"] == 1
    assert_same(snapshot(source), snapshot(target))


def test_connection_rejected_by_target_is_named(fresh):
    source, target = fresh
    rig.seed(source, {"connections": [corpus.BAD_EXTRA]})
    result = migrate(source, target, conflict_policy="overwrite")
    conns = result.summaries["settings.connections"]
    if target.major >= 3:  # Airflow 3 refuses non-JSON extras
        assert result.run_state == "failed"
        assert [f["item"] for f in conns["failures"]] == ["connection 'bad_extra'"]
        assert conns["created"] == len(corpus.CONNECTIONS)
        assert_same(snapshot(source), snapshot(target), except_keys={"connections": {"bad_extra"}})
    else:
        assert result.run_state == "success", result.explain()
        assert_same(snapshot(source), snapshot(target))


def test_selected_names_and_dry_run(fresh):
    source, target = fresh
    dry = migrate(source, target, resources=["variables"], dry_run=True, conflict_policy="overwrite")
    assert dry.run_state == "success", dry.explain()
    assert dry.summaries["settings.variables"]["created"] == len(corpus.VARIABLES)
    assert dry.task_states["settings.pools"] == "skipped"
    assert snapshot(target)["variables"] == {}

    some = migrate(source, target, resources=["variables"], variable_keys=["plain", "dotted.key.name", "missing"])
    assert some.run_state == "failed"  # 'missing' is not on the source
    variables = some.summaries["settings.variables"]
    assert variables["created"] == 2
    assert [f["item"] for f in variables["failures"]] == ["variable 'missing'"]
    assert set(snapshot(target)["variables"]) == {"plain", "dotted.key.name"}


@pytest.mark.parametrize("side", ["source", "target"])
def test_wrong_password_fails_fast(fresh, side):
    source, target = fresh
    server = source if side == "source" else target
    conn_id = f"starship_{side}"
    bad = server.connection_env(conn_id, password="definitely-wrong")
    started = time.monotonic()
    result = rig.run_migration_dag(
        target, source, {"resources": ["variables"]},
        **({"source_conn": bad} if side == "source" else {"target_conn": bad}),
    )
    elapsed = time.monotonic() - started
    assert result.run_state == "failed"
    expected_status = "HTTP 302" if server.major == 2 else "HTTP 401"
    line = next(l for l in result.output.splitlines() if f"on connection '{conn_id}' failed" in l)
    assert expected_status in line, line
    assert "Retrying" not in result.output
    assert elapsed < 120, elapsed
    assert "definitely-wrong" not in result.output
