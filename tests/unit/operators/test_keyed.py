"""Pools, variables and connections: the conflict policy, dry run, names, secrets."""

from __future__ import annotations

import pytest

from starship_dags.exceptions import (
    StarshipConflictError,
    StarshipServerError,
)
from starship_dags.hooks.rest import RestRoutes
from starship_dags.operators.base import as_name_list
from starship_dags.operators.connections import ConnectionsMigrationOperator
from starship_dags.operators.pools import PoolsMigrationOperator
from starship_dags.operators.variables import VariablesMigrationOperator
from starship_dags.report import Summary
from tests.unit.fakes import Ti as _Ti


class FakeTarget:
    """Just enough of StarshipHook for variables, keeping state like a real target."""

    def __init__(self, items, fail_create=()):
        self.items = {i["key"]: dict(i) for i in items}
        self.fail_create = set(fail_create)
        self.calls = []

    def get_variables(self):
        return list(self.items.values())

    def create_variable(self, item):
        self.calls.append(("create", item["key"], item["val"]))
        if (item["key"], item["val"]) in self.fail_create:
            raise StarshipServerError("t", "POST", "/api/starship/variables", 500, "boom")
        if item["key"] in self.items:
            raise StarshipConflictError("t", "POST", "/api/starship/variables", 409)
        self.items[item["key"]] = dict(item)

    def delete_variable(self, key):
        self.calls.append(("delete", key))
        self.items.pop(key, None)

    def add_secrets(self, values):
        pass


def operator(source_items, target: FakeTarget, **kwargs) -> VariablesMigrationOperator:
    op = VariablesMigrationOperator(task_id="variables", **kwargs)
    op.conflict_policy = kwargs.get("conflict_policy", "skip")
    op.__dict__["source_hook"] = FakeTarget(source_items)
    op.__dict__["target_hook"] = target
    return op


def run(op) -> Summary:
    summary = Summary(resource="variables")
    op.migrate(summary, context={})
    return summary


SOURCE = [{"key": "a", "val": "1", "description": None}, {"key": "b", "val": "2", "description": "d"}]


def test_skip_leaves_differing_items_and_names_them():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = run(operator(SOURCE, target))
    assert (summary.created, summary.skipped) == (1, 1)
    assert summary.skipped_items == ["variable 'a' (differs on the target: val)"]
    assert target.items["a"]["val"] == "other"


def test_fail_policy_fails_the_item_and_writes_nothing_for_it():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = run(operator(SOURCE, target, conflict_policy="fail"))
    assert summary.failed == 1 and summary.failures[0]["item"] == "variable 'a'"
    assert "val" in summary.failures[0]["reason"] and "other" not in summary.failures[0]["reason"]
    assert ("delete", "a") not in target.calls and target.items["b"]["val"] == "2"


def test_overwrite_restores_the_old_item_when_the_insert_fails():
    target = FakeTarget([{"key": "a", "val": "old", "description": None}], fail_create={("a", "1")})
    summary = run(operator(SOURCE, target, conflict_policy="overwrite"))
    assert summary.failed == 1 and "boom" in summary.failures[0]["reason"]
    assert target.items["a"]["val"] == "old"  # nothing already on the target is lost
    assert summary.created == 1


def test_conflict_on_create_with_same_content_counts_as_created():
    target = FakeTarget([])
    op = operator(SOURCE, target)
    original = target.create_variable

    def committed_but_answer_lost(item):
        original(item)
        raise StarshipConflictError("t", "POST", "/api/starship/variables", 409)

    target.create_variable = committed_but_answer_lost
    summary = run(op)
    assert (summary.created, summary.failed) == (2, 0)


def test_dry_run_writes_nothing():
    target = FakeTarget([{"key": "a", "val": "other", "description": None}])
    summary = Summary(resource="variables", dry_run=True)
    operator(SOURCE, target, conflict_policy="overwrite").migrate(summary, context={})
    assert (summary.created, summary.updated) == (1, 1)
    assert target.calls == []


def test_names_not_on_the_source_are_failures():
    target = FakeTarget([])
    summary = run(operator(SOURCE, target, names=["b", "nope"]))
    assert summary.created == 1 and summary.failures == [{"item": "variable 'nope'", "reason": "not found on the source"}]


def test_connection_extras_compare_as_json():
    op = ConnectionsMigrationOperator(task_id="c")
    a = op.normalize({"conn_id": "x", "conn_type": "http", "extra": '{"a": 1, "b": 2}', "port": "80"})
    b = op.normalize({"conn_id": "x", "conn_type": "http", "extra": '{"b":2,"a":1}', "port": 80})
    assert op.differing_fields(a, b) == []
    assert op.differing_fields(a, {**b, "password": "p"}) == ["password"]


def test_connection_secrets_include_sensitive_extra_fields():
    op = ConnectionsMigrationOperator(task_id="c")
    values = op.secret_values({"password": "pw", "extra": '{"api_key": "k-1", "region": "eu"}'})
    assert values == ["pw", "k-1"]


@pytest.mark.parametrize(
    ("conn_id", "valid"),
    [("conn with spaces", False), ("conn%2Fpct", False), ("🚀conn", False), ("q'uote", False), ("x" * 251, False),
     ("../..", True), ("http.api/v1", True), ("x" * 250, True), ("a#!():\\/-_.", True)],
)
def test_connection_ids_the_target_would_turn_into_null_are_refused_up_front(conn_id, valid):
    from starship_dags.operators.connections import ConnectionsMigrationOperator

    operator = ConnectionsMigrationOperator(task_id="c")
    reason = operator.refused_by_target(conn_id)
    assert (reason is None) is valid
    if reason:
        assert "rename it on the source" in reason


class _CountingTarget(FakeTarget):
    request_count = write_count = 0


def test_execute_records_wall_time_and_peak_memory_in_the_summary():
    target = _CountingTarget([])
    op = operator(SOURCE, target)
    op.__dict__["source_hook"] = _CountingTarget(SOURCE)
    op.source_hook.api_calls = op.source_hook.request_count = 0
    op.target_conn_id = "t"
    ti = _Ti()
    op.execute({"ti": ti})
    summary = ti.pushed["summary"]
    assert summary["created"] == 2 and summary["seconds"] >= 0
    assert 0 < summary["memory_start_mb"] <= summary["memory_peak_mb"]  # Linux: /proc/self/status


def test_a_part_counts_its_own_requests_and_time_and_the_main_summary_the_rest():
    op = operator(SOURCE, _CountingTarget([]))
    op.__dict__["source_hook"] = _CountingTarget(SOURCE)
    op.source_hook.api_calls = op.source_hook.request_count = 0
    copy = op.migrate

    def migrate(summary, context):
        op.source_hook.request_count += 3
        with op.part("extra"):
            op.source_hook.request_count += 5
        copy(summary, context)

    op.migrate = migrate
    ti = _Ti()
    op.execute({"ti": ti})
    summary = ti.pushed["summary"]
    assert summary["source_requests"] == 3 and summary["parts"][0]["source_requests"] == 5
    assert summary["parts"][0]["resource"] == "extra"


@pytest.mark.parametrize(
    ("value", "names"),
    [(None, []), ("", []), ("a, b", ["a", "b"]), ('["x/y", "z"]', ["x/y", "z"]), (["p", " "], ["p"]), ("a\nb", ["a", "b"])],
)
def test_name_lists(value, names):
    assert as_name_list(value) == names


class FakePools(RestRoutes):
    """Just enough of StarshipHook for pools: no pool DELETE exists, a change is a PATCH. What
    ``default_pool`` lets change is the hook's own rule (``RestRoutes.default_pool_fields``)."""

    def __init__(self, items, *, major=3):
        self.items = {i["name"]: dict(i) for i in items}
        self.airflow_major = major
        self.calls = []

    def get_pools(self):
        return list(self.items.values())

    def create_pool(self, item):
        self.calls.append(("create", item["name"]))
        self.items[item["name"]] = dict(item)

    def update_pool(self, name, fields):
        self.calls.append(("update", name, dict(fields)))
        self.items[name].update(fields)

    def add_secrets(self, values):
        pass


def pools_operator(source_items, target: FakePools) -> PoolsMigrationOperator:
    op = PoolsMigrationOperator(task_id="pools")
    op.conflict_policy = "overwrite"
    op.__dict__["source_hook"] = FakePools(source_items)
    op.__dict__["target_hook"] = target
    return op


def pool(name, slots, description="d", include_deferred=False):
    return {"name": name, "slots": slots, "description": description, "include_deferred": include_deferred}


def test_an_overwritten_pool_is_patched_on_its_differing_fields_and_no_other_pool_is_touched():
    target = FakePools([pool("a", 1), pool("own", 9)])
    summary = Summary(resource="pools")
    pools_operator([pool("a", 5, include_deferred=True)], target).migrate(summary, context={})
    assert summary.updated == 1
    assert target.calls == [("update", "a", {"slots": 5, "include_deferred": True})]
    assert target.items["own"] == pool("own", 9)


@pytest.mark.parametrize(("major", "written"), [(2, {"slots": 8, "description": "src"}), (3, {"slots": 8})])
def test_default_pool_takes_what_the_target_lets_change_and_is_then_unchanged(major, written):
    target = FakePools([pool("default_pool", 128, "tgt")], major=major)
    source = [pool("default_pool", 8, "src")]
    first = Summary(resource="pools")
    pools_operator(source, target).migrate(first, context={})
    assert first.updated == 1 and target.calls == [("update", "default_pool", written)]
    again = Summary(resource="pools")
    pools_operator(source, target).migrate(again, context={})
    assert (again.unchanged, again.updated) == (1, 0) and len(target.calls) == 1


def test_a_differing_pool_whose_name_holds_a_slash_fails_by_name_and_nothing_is_written():
    target = FakePools([pool("a/b", 1)])
    summary = Summary(resource="pools")
    pools_operator([pool("a/b", 2)], target).migrate(summary, context={})
    assert summary.failures[0]["item"] == "pool 'a/b'" and "slots" in summary.failures[0]["reason"]
    assert "UI" in summary.failures[0]["reason"] and target.calls == []
