"""List POSTs in byte-bounded batches: 413 splits, refused rows isolated, lost answers checked."""

from __future__ import annotations

import json

import pytest

from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipConflictError,
    StarshipPayloadTooLargeError,
)
from starship_dags.hooks.batching import encode_item, iter_byte_batches
from starship_dags.hooks.starship import StarshipHook


def test_byte_batches_stay_under_the_limit():
    items = [encode_item({"run_id": f"run_{i}", "conf": {"x": "y" * (i % 97)}}) for i in range(1000)]
    batches = list(iter_byte_batches(items, 4_000))
    assert [item for batch in batches for item in batch] == items
    for batch in batches:
        body = b'{"dag_runs": [' + b",".join(batch) + b"]}"
        assert len(body) <= 4_000 + len(b'{"dag_runs": []}')


def test_oversized_item_forms_its_own_batch():
    items = [b"1", b"x" * 50, b"2"]
    assert list(iter_byte_batches(items, 10)) == [[b"1"], [b"x" * 50], [b"2"]]


def test_413_splits_batches_until_they_fit(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"), max_batch_bytes=10_000_000)
    accepted: list[str] = []

    def fake_request(method, route, *, data, **kwargs):
        runs = json.loads(data)["dag_runs"]
        if len(runs) > 3:
            raise StarshipPayloadTooLargeError("c", method, route, 413)
        accepted.extend(r["run_id"] for r in runs)

    mocker.patch.object(hook, "request", side_effect=fake_request)
    runs = [{"dag_id": "d", "run_id": f"r{i}"} for i in range(10)]
    result = hook.create_dag_runs(runs)
    assert (result.sent, result.failed) == (10, [])
    assert accepted == [r["run_id"] for r in runs]


def test_a_held_tail_is_the_last_partly_filled_body_and_is_not_sent(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"), max_batch_bytes=200)
    bodies: list[list[str]] = []
    mocker.patch.object(hook, "request", side_effect=lambda method, route, *, data, **kw: bodies.append(
        [r["run_id"] for r in json.loads(data)["dag_runs"]]))
    runs = [{"dag_id": "d", "run_id": f"r{i}"} for i in range(10)]  # 30 bytes each: 6 to a body
    result = hook.create_dag_runs(runs, hold_tail=True)
    assert bodies == [[f"r{i}" for i in range(6)]] and (result.sent, result.held) == (6, 4)
    result = hook.create_dag_runs(runs)  # without: every body goes
    assert bodies[1:] == [[f"r{i}" for i in range(6)], [f"r{i}" for i in range(6, 10)]]
    assert (result.sent, result.held) == (10, 0)


def test_a_refused_item_is_isolated_and_the_rest_go_in(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    accepted: list[str] = []

    def fake_request(method, route, *, data, **kwargs):
        runs = json.loads(data)["dag_runs"]
        if any(r["run_id"] == "r6" for r in runs):
            raise StarshipConflictError("c", method, route, 409, "duplicate key (dag_id, logical_date)")
        accepted.extend(r["run_id"] for r in runs)

    mocker.patch.object(hook, "request", side_effect=fake_request)
    result = hook.create_dag_runs([{"dag_id": "d", "run_id": f"r{i}"} for i in range(10)])
    assert result.sent == 9 and sorted(accepted) == sorted(f"r{i}" for i in range(10) if i != 6)
    assert result.failed == [("run 'r6'", "HTTP 409: duplicate key (dag_id, logical_date)")]


def test_auth_errors_abort_a_list_post(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    mocker.patch.object(hook, "request", side_effect=StarshipAuthError("c", "POST", "/x", 401))
    with pytest.raises(StarshipAuthError):
        hook.create_dag_runs([{"dag_id": "d", "run_id": "a"}, {"dag_id": "d", "run_id": "b"}])


def test_413_on_a_single_item_names_it(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    mocker.patch.object(hook, "request", side_effect=StarshipPayloadTooLargeError("c", "POST", "/x", 413))
    result = hook.create_dag_runs([{"dag_id": "d", "run_id": "huge"}])
    assert result.sent == 0
    assert result.failed[0][0] == "run 'huge'" and "HTTP 413" in result.failed[0][1]


def test_a_409_after_a_lost_answer_is_uncertain_not_failed(fake_server, conn_env):
    # The first attempt's answer is lost (502); the retry finds the rows there already (409).
    fake_server.script((502, None, b""), (409, None, {"error": "Integrity Error (Duplicate Record?)"}))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retry_max_wait": 0}))
    runs = [{"dag_id": "d", "run_id": f"r{i}"} for i in range(4)]
    result = hook.create_dag_runs(runs)
    assert (result.sent, result.failed) == (0, [])
    assert result.uncertain == runs
    assert len(fake_server.seen) == 2  # no bisection into single rows
