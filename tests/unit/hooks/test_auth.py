"""Logins found out from the server's answer, shared between tasks, and refused passwords remembered."""

from __future__ import annotations

import pytest

from starship_dags.exceptions import (
    StarshipAuthError,
)
from starship_dags.hooks.starship import StarshipHook


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


def test_a_login_that_met_an_unwell_server_is_not_remembered_as_refused(fake_server, conn_env):
    fake_server.script((401, None, {}), (502, None, b""))
    conn = conn_env("c", host=fake_server.url, login="admin", password="pw", extra={"retries": 1})
    with pytest.raises(StarshipAuthError, match="HTTP 502"):
        StarshipHook(conn).get_pools()
    fake_server.script((401, None, {}), (201, None, {"access_token": "jwt"}), (200, None, []))
    assert StarshipHook(conn).get_pools() == []  # the next task logs in normally
