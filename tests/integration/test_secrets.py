"""No secret of the source or of the connections reaches a task log, an XCom, the report or an
error message of the migration, on success and on failure paths, into Airflow 2.11 and 3.3."""

from __future__ import annotations

import json

import requests

from tests.integration import rig

S = {  # unique strings; each must stay out of everything the migration writes about itself
    "conn_password": "S3cr-conn-pw-81c4e2",
    "extra_api_key": "S3cr-extra-apikey-55d0",
    "extra_nested_token": "S3cr-nested-tok-7a7a",
    "bad_extra_secret": "S3cr-in-bad-extra-0f0f",
    "var_password": "S3cr-var-pw-1b1b",
    "var_secret": "S3cr-var-secret-2c2c",
    "var_api_key": "S3cr-var-apikey-3d3d",
    "var_token": "S3cr-var-token-4e4e",
    "rotated_password": "S3cr-rotated-pw-9e9e",
    "rotated_secret": "S3cr-rotated-secret-6f6f",
}
SPEC = {
    "variables": [
        {"key": "warehouse_password", "val": S["var_password"]},
        {"key": "oauth_client_secret", "val": S["var_secret"]},
        {"key": "stripe_api_key", "val": S["var_api_key"]},
        {"key": "slack_token", "val": S["var_token"]},
    ],
    "connections": [
        {"conn_id": "secret_pg", "conn_type": "postgres", "host": "db", "login": "etl", "password": S["conn_password"],
         "extra": json.dumps({"api_key": S["extra_api_key"], "auth": {"token": S["extra_nested_token"]}})},
    ],
}
# Airflow 3 refuses this extra: the refusal must not carry it into a message.
BAD = {"conn_id": "secret_bad_extra", "conn_type": "http", "host": "h",
       "extra": f'not json {{"password": "{S["bad_extra_secret"]}"}}'}


def migration_xcoms(target: rig.AirflowServer) -> str:
    rows = target.sql("SELECT value FROM xcom WHERE dag_id = 'starship_migration'")
    return "\n".join(bytes(v).decode(errors="replace") if isinstance(v, (bytes, memoryview)) else json.dumps(v)
                     for (v,) in rows)


def test_no_secret_in_logs_xcoms_report_or_errors(source, target):
    rig.reset_keyed_resources(source)
    rig.reset_keyed_resources(target)
    target.sql("DELETE FROM dag_run WHERE dag_id = 'starship_migration'")
    rig.seed(source, {**SPEC, "connections": [*SPEC["connections"], BAD]})
    secrets = [*S.values(), rig.ADMIN_PASSWORD]
    target_conn = None
    if target.major >= 3:  # the target is reached with an API token: it is a secret too
        answer = requests.post(f"{target.url}/auth/token", timeout=30,
                               json={"username": rig.ADMIN_USER, "password": rig.ADMIN_PASSWORD})
        token = answer.json()["access_token"]
        secrets.append(token)
        target_conn = target.connection_env("starship_target", login=None, password=token)
    conf = {"resources": ["variables", "connections"], "conflict_policy": "overwrite"}

    first = rig.run_migration_dag(target, source, conf, target_conn=target_conn)
    # The secrets went through the migration: they are on the target.
    on_target = target.client().by_key("variables", "key")
    assert on_target["stripe_api_key"]["val"] == S["var_api_key"]
    assert target.client().by_key("connections", "conn_id")["secret_pg"]["password"] == S["conn_password"]
    if target.major >= 3:
        assert first.run_state == "failed"  # the bad extra was refused, and named
        assert "connection 'secret_bad_extra'" in first.output

    # Rotated on the source, then migrated with 'fail': the differences are reported by name.
    rig.seed(source, {"variables": [{"key": "oauth_client_secret", "val": S["rotated_secret"]}],
                      "connections": [{**SPEC["connections"][0], "password": S["rotated_password"]}]})
    second = rig.run_migration_dag(target, source, {**conf, "conflict_policy": "fail"}, target_conn=target_conn)
    assert second.run_state == "failed"
    assert "variable 'oauth_client_secret'" in second.output and "connection 'secret_pg'" in second.output

    haystacks = {
        "dags test output (task logs and exception messages)": first.output + second.output,
        "task log files": rig.task_log_text(target),
        "XComs of the migration (summaries, report)": migration_xcoms(target),
        "report": json.dumps([first.report, second.report], ensure_ascii=False),
    }
    assert "oauth_client_secret" in haystacks["XComs of the migration (summaries, report)"]  # looked in the right place
    leaks = {where: [name for name, value in zip([*S, "admin", "token"], secrets) if value in text]
             for where, text in haystacks.items()}
    assert not any(leaks.values()), leaks
