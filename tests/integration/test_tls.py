"""TLS in front of real servers: a loopback HTTPS proxy with a certificate from a throwaway CA.

Verification is on by default (the migration fails at once, naming the connection and how to
fix it); a connection that names the CA bundle migrates; verify=false works with a warning.
"""

from __future__ import annotations

import pytest

from tests.integration import corpus, rig
from tests.integration.faultproxy import FaultProxy
from tests.tls import make_certificates

CONF = {"resources": ["pools", "variables", "connections"], "conflict_policy": "overwrite"}


@pytest.fixture
def tls_pair(source, target, tmp_path):
    certs = make_certificates(tmp_path / "tls")
    proxies = [FaultProxy(s.url, certfile=certs["cert"], keyfile=certs["key"]).start() for s in (source, target)]
    rig.reset_keyed_resources(source)
    rig.reset_keyed_resources(target)
    rig.seed(source, corpus.spec())
    yield source, target, proxies, certs
    for proxy in proxies:
        proxy.stop()


def conns(pair, extra):
    source, target, (source_proxy, target_proxy), _ = pair
    return {"source_conn": source.connection_env("starship_source", host=source_proxy.url, extra=extra),
            "target_conn": target.connection_env("starship_target", host=target_proxy.url, extra=extra)}


def test_tls_verified_by_default_and_with_a_named_ca(tls_pair):
    source, target, proxies, certs = tls_pair
    refused = rig.run_migration_dag(target, source, CONF, **conns(tls_pair, None))
    assert refused.run_state == "failed"
    line = next(l for l in refused.output.splitlines() if "on connection 'starship_" in l and "failed" in l)
    assert "CERTIFICATE_VERIFY_FAILED" in line and "extra 'verify'" in line, line
    assert "Retrying" not in refused.output  # a certificate problem is not retried
    assert target.client().by_key("variables", "key") == {}

    trusted = rig.run_migration_dag(target, source, CONF, **conns(tls_pair, {"verify": certs["ca"]}))
    assert trusted.run_state == "success", trusted.explain()
    assert trusted.summaries["settings.variables"]["created"] == len(corpus.VARIABLES)
    assert "verification is OFF" not in trusted.output
    assert all(proxy.count(r"^GET /api/starship/") > 0 for proxy in proxies)  # really went through TLS


def test_tls_verification_off_warns(tls_pair):
    source, target, _, _ = tls_pair
    result = rig.run_migration_dag(target, source, {**CONF, "resources": ["variables"]}, **conns(tls_pair, {"verify": False}))
    assert result.run_state == "success", result.explain()
    assert "TLS certificate verification is OFF for connection 'starship_source'" in result.output
    assert "TLS certificate verification is OFF for connection 'starship_target'" in result.output
