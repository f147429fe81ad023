"""Auth failures against real servers, source (Airflow 2.11) and targets (2.11, 3.3): wrong
password, made-up or revoked token, expired token, user without permission. Each fails fast,
naming the connection, the route and the status; repeated failures never lock out the source.

The probes run the hook in the server's own Airflow environment (as a task would), with a
private login cache per test.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests

from tests.integration import rig

PROBE = r"""
import json, time
from starship_dags.hooks.starship import StarshipHook
started = time.monotonic()
hook = StarshipHook("probe")
try:
    hook.get_variables()
    out = {"ok": True}
except Exception as err:
    out = {"ok": False, "type": type(err).__name__, "message": str(err)}
out.update(requests=hook.request_count, logins=hook.login_count, retries=hook.retry_count,
           seconds=round(time.monotonic() - started, 2))
print("PROBE " + json.dumps(out))
"""


def probe(server: rig.AirflowServer, cache, **conn) -> dict:
    env = server.environ(STARSHIP_DAGS_SESSION_CACHE=str(cache), **server.connection_env("probe", **conn))
    output = server.python(PROBE, env=env, timeout=180)
    line = next(l for l in output.splitlines()[::-1] if l.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def assert_fails_fast(result: dict, route: str, status: int, *, secret: str) -> None:
    assert not result["ok"], result
    assert result["type"].startswith("Starship") and "Error" in result["type"], result
    assert f"{route} on connection 'probe' failed: HTTP {status}" in result["message"], result["message"]
    assert result["retries"] == 0 and result["seconds"] < 20, result
    assert secret not in result["message"]


@pytest.fixture(params=["source", "target"])
def server(request, source, target):
    chosen = source if request.param == "source" else target
    chosen.ensure_viewer()
    return chosen


def test_wrong_password(server, tmp_path):
    result = probe(server, tmp_path, password="Wrong-pw-does-not-work")
    route = "POST /login/" if server.major == 2 else "POST /auth/token"
    # Airflow 2 answers a refused form login by sending the browser back to the form
    assert_fails_fast(result, route, 302 if server.major == 2 else 401, secret="Wrong-pw-does-not-work")
    assert result["logins"] == 1


def test_made_up_or_revoked_token(server, tmp_path):
    result = probe(server, tmp_path, login=None, password="revoked-token-6b1d")
    # Airflow 3 answers a token it cannot decode with 403 "Invalid JWT token"
    assert_fails_fast(result, "GET /api/starship/variables", 302 if server.major == 2 else 403,
                      secret="revoked-token-6b1d")
    assert "the API token was refused" in result["message"] and result["logins"] == 0


def test_expired_token(target, tmp_path):
    if target.major < 3:
        pytest.skip("Airflow 2 has no API tokens of its own (Astro's platform validates those)")
    fresh = requests.post(f"{target.url}/auth/token", timeout=30,
                          json={"username": rig.ADMIN_USER, "password": rig.ADMIN_PASSWORD}).json()["access_token"]
    header = jwt.get_unverified_header(fresh)
    claims = jwt.decode(fresh, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    expired = jwt.encode(claims, target.environ()["AIRFLOW__API_AUTH__JWT_SECRET"], algorithm=header["alg"],
                         headers={k: v for k, v in header.items() if k not in ("alg", "typ")})
    # The server itself takes it for expired (not malformed).
    answer = requests.get(f"{target.url}/api/v2/dags", headers={"Authorization": f"Bearer {expired}"}, timeout=30)
    assert answer.status_code == 401 and "expired" in answer.text.lower(), answer.text
    result = probe(target, tmp_path, login=None, password=expired)
    assert_fails_fast(result, "GET /api/starship/variables", 401, secret=expired)


def test_user_without_permission(server, tmp_path):
    if server.major >= 3:
        pytest.skip("Airflow 3's simple auth manager lets every role read the configuration, which is all "
                    "Starship checks: no user of it lacks the permission")
    result = probe(server, tmp_path, login=rig.VIEWER_USER, password=rig.VIEWER_PASSWORD)
    assert not result["ok"], result
    assert result["type"] == "StarshipPermissionError", result
    assert "GET /api/starship/variables on connection 'probe' failed" in result["message"], result["message"]
    assert "lacks permission" in result["message"]
    assert result["retries"] == 0 and result["seconds"] < 20, result
    assert rig.VIEWER_PASSWORD not in result["message"]


def test_repeated_wrong_logins_never_lock_out_the_airflow2_source(source, tmp_path):
    before = source.login_count()
    for _attempt in range(8):  # eight tasks of a migration with a wrong password
        result = probe(source, tmp_path, password="Wrong-pw-again")
        assert not result["ok"] and "HTTP 429" not in result["message"], result
    assert source.login_count() - before == 1  # only the first task tried the password
    good = probe(source, tmp_path)  # fixed at once: no lockout, no 429
    assert good["ok"], good
    assert source.login_count() - before == 2
