"""The transport over HttpHook, against a scripted loopback server: retries, typed errors, extras, threads."""

from __future__ import annotations

import json

import pytest

from starship_dags.exceptions import (
    StarshipBadRequestError,
    StarshipConflictError,
    StarshipServerError,
    StarshipTransportError,
)
from starship_dags.hooks.starship import StarshipHook


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


def test_a_compressed_body_is_not_mistaken_for_a_truncated_one(fake_server, conn_env):
    # A proxy in front of the server (nginx, a load balancer) gzips and sets Content-Length to the
    # compressed size; requests hands back the longer, decompressed body.
    import gzip

    payload = [{"key": f"k{i}", "val": "v" * 50} for i in range(40)]
    fake_server.script((200, {"Content-Encoding": "gzip"}, gzip.compress(json.dumps(payload).encode())))
    hook = StarshipHook(conn_env("c", host=fake_server.url, password="t", extra={"retries": 1}))
    assert hook.get_variables() == payload
    assert hook.retry_count == 0


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
