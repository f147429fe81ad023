"""The raw ceiling: the least a client can do to copy DAG history through the Starship API.

Per DAG: one GET of every run, one GET of every task instance, one GET of every retry-history row
(Starship has no maximum page size), then POSTs to the target in the largest bodies the Airflow 2
webserver accepts (just under its 1 MiB ``allowed_payload_size``). No comparison with the target, no
translation (Airflow 2.11 to 2.11), no retries: what the two servers allow, and nothing more.
DAGs are spread over K threads, each with its own HTTP session.

With ``lean``, the client also leaves out the columns that are NULL in every row of a DAG's route,
by the package's own rule (:func:`starship_dags.translate.without_null_columns`), as the migration
DAG does: the same copy with less insert work for the target. The benchmark reports it beside the
raw ceiling, so that this part of ours is not mistaken for a faster client.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from starship_dags.translate import without_null_columns
from tests.integration import rig

MAX_BODY = 1024 * 1024 - 16 * 1024  # the webserver's default limit, less room for headers and envelope
ROUTES = (("dag_runs", "dag_runs"), ("task_instances", "task_instances"),
          ("task_instance_history", "task_instances"))


@dataclass
class CeilingResult:
    threads: int
    lean: bool
    rows: int
    seconds: float
    requests: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _batches(items: list[dict], key: str) -> list[bytes]:
    """Compact JSON bodies ``{"key": [...]}``, each as large as MAX_BODY allows."""
    bodies, current, size = [], [], len(key) + 8
    for item in items:
        encoded = json.dumps(item, separators=(",", ":")).encode()
        if current and size + len(encoded) + 1 > MAX_BODY:
            bodies.append(b'{"%s":[%s]}' % (key.encode(), b",".join(current)))
            current, size = [], len(key) + 8
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        bodies.append(b'{"%s":[%s]}' % (key.encode(), b",".join(current)))
    return bodies


class ThreadSessions:
    """A raw client's HTTP sessions: one per thread and server, sharing one login per server (its
    cookie: Airflow 2 rate-limits logins)."""

    def __init__(self, source: rig.AirflowServer, target: rig.AirflowServer) -> None:
        self.source_cookies = source.client().session.cookies
        self.target_cookies = target.client().session.cookies
        self.source_url, self.target_url = source.url, target.url
        self.local = threading.local()
        self.lock = threading.Lock()
        self.requests = 0

    def sessions(self) -> tuple[requests.Session, requests.Session]:
        if not hasattr(self.local, "source"):
            self.local.source, self.local.target = requests.Session(), requests.Session()
            self.local.source.cookies.update(self.source_cookies)
            self.local.target.cookies.update(self.target_cookies)
        return self.local.source, self.local.target


class _Copier(ThreadSessions):
    def __init__(self, source: rig.AirflowServer, target: rig.AirflowServer, lean: bool) -> None:
        super().__init__(source, target)
        self.lean = lean
        self.rows = 0

    def copy_dag(self, dag_id: str) -> None:
        source, target = self.sessions()
        rows = calls = 0
        for route, key in ROUTES:
            answer = source.get(f"{self.source_url}/api/starship/{route}", timeout=600, allow_redirects=False,
                                params={"dag_id": dag_id, "limit": 10_000_000, "offset": 0})
            answer.raise_for_status()
            calls += 1
            items = answer.json()[key]
            if self.lean:
                items = without_null_columns(items)
            for body in _batches(items, key):
                done = target.post(f"{self.target_url}/api/starship/{route}", data=body, timeout=600,
                                   headers={"Content-Type": "application/json"}, allow_redirects=False)
                calls += 1
                if done.status_code >= 300:
                    raise RuntimeError(f"{dag_id}: POST {route}: {done.status_code} {done.text[:300]}")
            rows += len(items)
        with self.lock:
            self.rows += rows
            self.requests += calls


def copy_history(source: rig.AirflowServer, target: rig.AirflowServer, dag_ids: list[str], threads: int,
                 lean: bool = False) -> CeilingResult:
    copier = _Copier(source, target, lean)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(copier.copy_dag, dag_id) for dag_id in dag_ids]:
            future.result()
    return CeilingResult(threads, lean, copier.rows, time.monotonic() - started, copier.requests)
