"""Starship's own history operator (``astronomer-starship[provider]``), run as users run it: a DAG
on the source, executed by the source's scheduler, pushing to the target over HTTP."""

from __future__ import annotations

import json
import re
import time

from tests.integration import rig

DAG_ID = "starship_operator_bench"
CONN_ID = "starship_bench_target"
DAG_FILE = """
import datetime

from airflow import DAG
from astronomer_starship.providers.starship.operators.starship import starship_dag_history_migration

with DAG({dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
    starship_dag_history_migration(dag_ids={dag_ids!r}, http_conn_id={conn_id!r}, dag_run_limit={limit})
"""


def connect(source: rig.AirflowServer, target: rig.AirflowServer) -> None:
    """Give the source a connection to the target that Starship's HttpHook can use.

    The hook sends the connection's extras as headers. An Airflow 2 webserver only accepts a
    logged-in session on plugin routes, so the extras carry the session cookie of one login."""
    cookie = target.client().session.cookies.get("session")
    source.extra_env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "http", "host": target.url, "extra": {"Cookie": f"session={cookie}"}})


def run(source: rig.AirflowServer, dag_ids: list[str], limit: int, timeout: float) -> tuple[str, float, str]:
    """Run Starship's DAG once with this per-DAG run limit: (state, seconds, why it failed)."""
    (source.dags_folder / "starship_operator_bench.py").write_text(
        DAG_FILE.format(dag_id=DAG_ID, dag_ids=dag_ids, conn_id=CONN_ID, limit=limit))
    source.cli("dags", "reserialize")
    source.cli("dags", "unpause", DAG_ID)
    run_id = f"bench_limit_{limit}_{int(time.time())}"
    source.cli("dags", "trigger", DAG_ID, "-r", run_id)
    state, seconds = source.wait_for_run(DAG_ID, run_id, timeout)
    why = ""
    if state != "success":
        failed = [row[0] for row in source.sql(
            "SELECT task_id || '[' || map_index || ']' FROM task_instance WHERE dag_id = %s AND run_id = %s "
            "AND state = 'failed'", (DAG_ID, run_id))]
        logs = "\n".join(p.read_text(errors="replace") for p in (source.home / "logs").rglob("*.log")
                         if f"dag_id={DAG_ID}" in str(p) and f"run_id={run_id}" in str(p))
        # requests' raise_for_status() message, e.g. "413 Client Error: REQUEST ENTITY TOO LARGE for url"
        reasons = sorted(set(re.findall(r"\b(\d{3}) (?:Client|Server) Error", logs)))
        why = f"{len(failed)} task(s) failed ({', '.join(reasons) or 'see the source task logs'})"
    return state, seconds, why

