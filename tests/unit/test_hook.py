"""StarshipHook edge cases: retry classification, batching, redaction, auth detection."""

from __future__ import annotations

import json

import pytest
import requests

from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipBadRequestError,
    StarshipConflictError,
    StarshipPayloadTooLargeError,
    StarshipServerError,
    StarshipTransportError,
)
from starship_dags.hooks.batching import encode_item, iter_byte_batches
from starship_dags.hooks.starship import StarshipHook
from starship_dags.hooks.transport import is_transient_response, response_detail, retry_after_seconds


def response(status: int, body=b"", headers=None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer.headers.update({"Content-Type": "application/json", **(headers or {})})
    return answer


@pytest.mark.parametrize(
    ("status", "body", "transient"),
    [
        (429, b"", True),
        (502, b"<html>bad gateway</html>", True),
        (503, b"", True),
        (504, b"", True),
        (500, b"Internal Server Error", True),
        (500, {"error": "Unknown Error", "error_message": "Unconsumed column names: x"}, False),
        (400, {"error": "Data Error"}, False),
        (401, b"", False),
        (404, b"", False),
        (409, {"error": "Integrity Error (Duplicate Record?)"}, False),
        (413, b"<html>too large</html>", False),
    ],
)
def test_retry_classification(status, body, transient):
    assert is_transient_response(response(status, body)) is transient


def test_retry_after_header():
    assert retry_after_seconds(response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert retry_after_seconds(response(429)) is None


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


def test_error_detail_drops_sql_parameters_and_secrets():
    body = {
        "error": "Integrity Error (Duplicate Record?)",
        "error_message": "duplicate key value\nDETAIL: Key (key)=(k) already exists.\n"
        "[SQL: INSERT INTO variable ...]\n[parameters: {'val': 'hunter2-secret'}]",
        "kwargs": {"key": "k", "val": "hunter2-secret"},
    }
    detail = response_detail(response(409, body), secrets=["tok-123"])
    assert "already exists" in detail
    assert "hunter2-secret" not in detail and "[SQL" not in detail
    assert response_detail(response(500, {"error": "failed for tok-123"}), ["tok-123"]) == "failed for ***"
    row = {"error": "null value in column \"conn_id\"\nDETAIL: Failing row contains (4, null, http, gAAAA-cipher)."}
    assert "gAAAA-cipher" not in response_detail(response(500, row))
    html = response_detail(response(413, b"<html><h1>Request Entity Too Large</h1></html>", {"Content-Type": "text/html"}))
    assert html == "Request Entity Too Large"


def test_retries_transient_statuses_then_succeeds(fake_server, conn_env):
    fake_server.script((503, None, b"busy"), (502, None, b""), (200, None, [{"key": "a", "val": "b"}]))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="tok-abc", extra={"retry_max_wait": 0}))
    assert hook.get_variables() == [{"key": "a", "val": "b"}]
    assert hook.request_count == 3 and hook.retry_count == 2
    assert fake_server.seen[0][3]["Authorization"] == "Bearer tok-abc"


def test_gives_up_after_the_retry_budget(fake_server, conn_env):
    fake_server.script((503, None, b"still busy"))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retries": 3, "retry_max_wait": 0}))
    with pytest.raises(StarshipServerError) as err:
        hook.get_pools()
    assert hook.request_count == 3
    assert "GET /api/starship/pools on connection 'c' failed: HTTP 503" in str(err.value)


def test_client_errors_are_not_retried(fake_server, conn_env):
    fake_server.script((400, None, {"error": "Missing required key: slots"}))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t"))
    with pytest.raises(StarshipBadRequestError, match="Missing required key: slots"):
        hook.create_pool({"name": "p"})
    assert hook.request_count == 1


def test_conflict_message_names_item_without_secret(fake_server, conn_env):
    fake_server.script((409, None, {"error": "Integrity Error (Duplicate Record?)", "error_message": "dup",
                                    "kwargs": {"password": "p4ss-w0rd-x"}}))
    hook = StarshipHook(conn_env("tgt", host=fake_server.url, password="t"))
    with pytest.raises(StarshipConflictError) as err:
        hook.create_connection({"conn_id": "db", "conn_type": "postgres", "password": "p4ss-w0rd-x"})
    assert "connection 'db'" in str(err.value) and "'tgt'" in str(err.value)
    assert "p4ss-w0rd-x" not in str(err.value)


def test_connection_refused_is_a_transport_error(conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t", extra={"retries": 2, "retry_max_wait": 0}))
    with pytest.raises(StarshipTransportError, match="on connection 'c' failed: no HTTP response"):
        hook.info()
    assert hook.request_count == 2


def test_own_extras_are_not_sent_as_headers(fake_server, conn_env):
    fake_server.script((200, None, []))
    hook = StarshipHook(conn_env("c", host=fake_server.url, extra={"token": "tk-1", "read_timeout": 5, "X-Custom": "y"}))
    hook.get_pools()
    headers = fake_server.seen[0][3]
    assert headers["Authorization"] == "Bearer tk-1"
    assert "token" not in {h.lower() for h in headers} and "read_timeout" not in {h.lower() for h in headers}
    assert headers["X-Custom"] == "y"


def test_airflow3_login_exchanges_password_for_token(fake_server, conn_env):
    fake_server.script(
        (401, None, {"detail": "Not authenticated"}),
        (201, None, {"access_token": "jwt-1"}),
        (200, None, []),
        (401, None, {"detail": "expired"}),  # the token expires: refreshed once
        (201, None, {"access_token": "jwt-2"}),
        (200, None, [{"name": "p"}]),
    )
    hook = StarshipHook(conn_env("c", host=fake_server.url, login="admin", password="pw-secret"))
    assert hook.get_pools() == []
    assert hook.get_pools() == [{"name": "p"}]
    paths = [(m, p) for m, p, _, _ in fake_server.seen]
    assert paths[1] == ("POST", "/auth/token") and paths[4] == ("POST", "/auth/token")
    assert fake_server.seen[5][3]["Authorization"] == "Bearer jwt-2"
    assert hook.login_count == 2


def test_token_refused_fails_without_login_attempts(fake_server, conn_env):
    fake_server.script((401, None, {"detail": "Invalid token"}))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="bad-token"))
    with pytest.raises(StarshipAuthError, match="HTTP 401"):
        hook.get_pools()
    assert hook.request_count == 1


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


def test_a_login_is_shared_with_the_next_task(fake_server, conn_env, private_session_cache):
    fake_server.script(
        (401, None, {"detail": "Not authenticated"}),
        (201, None, {"access_token": "jwt-shared-123"}),
        (200, None, []),
    )
    conn_id = conn_env("c", host=fake_server.url, login="admin", password="pw-secret")
    StarshipHook(conn_id).get_pools()
    fake_server.script((200, None, [{"name": "p"}]))
    second = StarshipHook(conn_id)
    assert second.get_pools() == [{"name": "p"}]
    assert second.login_count == 0 and second.request_count == 1
    assert fake_server.seen[-1][3]["Authorization"] == "Bearer jwt-shared-123"
    stored = b"".join(p.read_bytes() for p in private_session_cache.iterdir())
    assert b"jwt-shared-123" not in stored and b"pw-secret" not in stored


def test_a_stale_shared_login_is_replaced(fake_server, conn_env):
    conn_id = conn_env("c", host=fake_server.url, login="admin", password="pw")
    fake_server.script((401, None, {}), (201, None, {"access_token": "old"}), (200, None, []))
    StarshipHook(conn_id).get_pools()
    fake_server.script((401, None, {"detail": "expired"}), (201, None, {"access_token": "new"}), (200, None, []))
    hook = StarshipHook(conn_id)
    assert hook.get_pools() == []
    assert hook.login_count == 1
    assert fake_server.seen[-1][3]["Authorization"] == "Bearer new"


def test_a_409_after_a_lost_answer_is_uncertain_not_failed(fake_server, conn_env):
    # The first attempt's answer is lost (502); the retry finds the rows there already (409).
    fake_server.script((502, None, b""), (409, None, {"error": "Integrity Error (Duplicate Record?)"}))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retry_max_wait": 0}))
    runs = [{"dag_id": "d", "run_id": f"r{i}"} for i in range(4)]
    result = hook.create_dag_runs(runs)
    assert (result.sent, result.failed) == (0, [])
    assert result.uncertain == runs
    assert len(fake_server.seen) == 2  # no bisection into single rows


def test_gave_up_message_counts_attempts(fake_server, conn_env):
    fake_server.script((503, None, b"busy"))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retries": 2, "retry_max_wait": 0}))
    with pytest.raises(StarshipServerError, match="gave up after 2 attempts"):
        hook.get_variables()


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("True", True), (False, False), (None, True)])
def test_verify_strings_are_booleans(conn_env, value, expected):
    extra = {} if value is None else {"verify": value}
    hook = StarshipHook(conn_env("c", host="https://127.0.0.1:9", password="t", extra=extra))
    assert hook.verify is expected


def test_verify_naming_a_missing_ca_bundle_is_a_clear_error(conn_env):
    hook = StarshipHook(conn_env("c", host="https://127.0.0.1:9", password="t", extra={"verify": "/nope/ca.pem"}))
    with pytest.raises(ValueError, match="connection 'c': extra 'verify' names a CA bundle that does not exist"):
        hook.get_pools()


def test_a_refused_password_is_not_tried_again_by_the_next_task(fake_server, conn_env):
    fake_server.script((401, None, {"detail": "Not authenticated"}), (401, None, {"detail": "Invalid credentials"}))
    conn = conn_env("c", host=fake_server.url, login="admin", password="wrong-pw")
    with pytest.raises(StarshipAuthError, match="POST /auth/token on connection 'c' failed: HTTP 401"):
        StarshipHook(conn).get_pools()
    assert [p for _, p, _, _ in fake_server.seen].count("/auth/token") == 1

    second = StarshipHook(conn)  # another task, same worker, same wrong password
    with pytest.raises(StarshipAuthError, match="refused moments ago"):
        second.get_pools()
    assert [p for _, p, _, _ in fake_server.seen].count("/auth/token") == 1  # no second login attempt
    assert second.login_count == 0

    fake_server.script((401, None, {}), (201, None, {"access_token": "jwt-ok"}), (200, None, []))
    fixed = StarshipHook(conn_env("c", host=fake_server.url, login="admin", password="right-pw"))
    assert fixed.get_pools() == []  # a corrected password is a different cache entry


def test_a_compressed_body_is_not_mistaken_for_a_truncated_one(fake_server, conn_env):
    # A proxy in front of the server (nginx, a load balancer) gzips and sets Content-Length to the
    # compressed size; requests hands back the longer, decompressed body.
    import gzip

    payload = [{"key": f"k{i}", "val": "v" * 50} for i in range(40)]
    fake_server.script((200, {"Content-Encoding": "gzip"}, gzip.compress(json.dumps(payload).encode())))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retries": 1}))
    assert hook.get_variables() == payload
    assert hook.retry_count == 0


def test_a_login_that_met_an_unwell_server_is_not_remembered_as_refused(fake_server, conn_env):
    fake_server.script((401, None, {}), (502, None, b""))
    conn = conn_env("c", host=fake_server.url, login="admin", password="pw", extra={"retries": 1})
    with pytest.raises(StarshipAuthError, match="HTTP 502"):
        StarshipHook(conn).get_pools()
    fake_server.script((401, None, {}), (201, None, {"access_token": "jwt"}), (200, None, []))
    assert StarshipHook(conn).get_pools() == []  # the next task logs in normally


def _ti(run_id: str, task_id: str, map_index: int = -1) -> dict:
    return {"dag_id": "d", "run_id": run_id, "task_id": task_id, "map_index": map_index}


def test_task_instance_pages_that_overlap_give_each_run_once_from_its_first_page(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    # paged by runs, two to a page; dates tie, so the second page repeats run b (one of its
    # task instances more by then: the run is taken whole from the page it was met on first)
    pages = {0: [_ti("a", "t"), _ti("a", "u"), _ti("b", "t")],
             2: [_ti("b", "t"), _ti("b", "u"), _ti("c", "t"), _ti("c", "t")],
             4: [_ti("d", "t", 0), _ti("d", "t", 1)]}
    mocker.patch.object(hook, "get_task_instances", side_effect=lambda dag_id, limit, offset: {
        "task_instances": pages[offset], "dag_run_count": 5})
    got = [(r["run_id"], r["task_id"], r["map_index"]) for r in hook.iter_task_instances("d", page_size=2)]
    assert got == [("a", "t", -1), ("a", "u", -1), ("b", "t", -1), ("c", "t", -1), ("d", "t", 0), ("d", "t", 1)]


def test_a_sibling_for_another_thread_shares_the_login_and_what_was_read_but_not_the_session(
        fake_server, conn_env, monkeypatch, private_session_cache):
    fake_server.script(
        (401, None, {"detail": "Not authenticated"}),
        (201, None, {"access_token": "jwt-sibling-1"}),
        (200, None, []),
    )
    conn_id = conn_env("c", host=fake_server.url, login="admin", password="pw-secret", extra={"retries": 2})
    main = StarshipHook(conn_id)
    main.get_pools()
    main.known_version("3.3.0")
    # the connection is gone from Airflow now: the sibling must not ask for it again
    monkeypatch.delenv("AIRFLOW_CONN_C")
    fake_server.script((200, None, [{"name": "p"}]))
    sibling = main.sibling()
    assert sibling.get_pools() == [{"name": "p"}]
    assert sibling.login_count == 0 and sibling.request_count == 1
    assert sibling.login.credentials is not main.login.credentials  # a login of its own from now on
    assert fake_server.seen[-1][3]["Authorization"] == "Bearer jwt-sibling-1"
    assert sibling.airflow_version == "3.3.0" and sibling.retries == 2 and "pw-secret" in sibling._secrets
    assert main.sibling(version="2.11.0").airflow_version == "2.11.0"


def test_a_sibling_of_a_hook_that_made_no_call_yet_logs_in_without_asking_airflow_again(
        fake_server, conn_env, monkeypatch):
    fake_server.script((401, None, {"detail": "Not authenticated"}), (201, None, {"access_token": "jwt-2"}),
                       (200, None, []))
    main = StarshipHook(conn_env("c", host=fake_server.url, login="admin", password="pw-secret"))
    sibling = main.sibling()
    monkeypatch.delenv("AIRFLOW_CONN_C")  # a thread must not look the connection up again
    assert sibling.get_pools() == [] and sibling.login_count == 1
    assert fake_server.seen[-1][3]["Authorization"] == "Bearer jwt-2"
