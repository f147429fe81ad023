"""TLS: verified by default, a named CA bundle, verification off with a warning."""

from __future__ import annotations

import logging

import pytest

from starship_dags.exceptions import StarshipTLSError
from starship_dags.hooks.starship import StarshipHook

POOLS = [{"name": "default_pool", "slots": 128}]


def test_verification_is_on_by_default_and_fails_fast(fake_tls_server, conn_env):
    fake_tls_server.script((200, None, POOLS))
    hook = StarshipHook(conn_env("tls_conn", host=fake_tls_server.url, password="tok-tls-1"))
    with pytest.raises(StarshipTLSError) as err:
        hook.get_pools()
    message = str(err.value)
    assert "GET /api/starship/pools on connection 'tls_conn' failed" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "extra 'verify'" in message
    assert hook.retry_count == 0 and hook.request_count == 1  # a certificate problem is not retried
    assert fake_tls_server.seen == []  # nothing was sent over the unverified channel
    assert "tok-tls-1" not in message


def test_a_named_ca_bundle_is_trusted(fake_tls_server, conn_env):
    fake_tls_server.script((200, None, POOLS))
    hook = StarshipHook(conn_env("tls_conn", host=fake_tls_server.url, password="t",
                                 extra={"verify": fake_tls_server.ca}))
    assert hook.get_pools() == POOLS
    assert fake_tls_server.seen[0][3]["Authorization"] == "Bearer t"


def test_verification_off_works_and_warns(fake_tls_server, conn_env, caplog, capfd):
    fake_tls_server.script((200, None, POOLS))
    hook = StarshipHook(conn_env("tls_conn", host=fake_tls_server.url, password="t", extra={"verify": False}))
    with caplog.at_level(logging.WARNING):
        assert hook.get_pools() == POOLS
    # Airflow 3 logs through structlog (to the terminal), Airflow 2 through logging
    logged = capfd.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert "TLS certificate verification is OFF for connection 'tls_conn'" in logged
