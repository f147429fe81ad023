"""The benchmark's artifact phase: XComs and task logs, against a raw client's ceiling.

**Workload.** DAGs of their own (``bench_art_*``): history from the same generator as the rest of
the benchmark, then about a third of the task instances get 1 to 3 XComs of 100 B to 50 KB, and
every try of every task instance a 2 to 50 KB log file where the source's Starship reads it.

**The artifact ceiling** is a minimal ``requests`` client, independent of the package, making only
the requests a copy needs: per DAG, one read of its task instances and its runs, the REST listing
of its XComs; per task instance with XComs, one Starship read of them and one POST per XCom; per
try, one Starship read of its log and one POST. K threads.

**Ours** is the migration DAG with ``dag_history``, ``xcoms`` and ``task_logs`` into an empty target,
as a first migration; its artifact time is the window from the first artifacts task's start to the
last one's end (the history before it is not counted, as the ceiling does not copy it).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from bench.ceiling import ThreadSessions
from tests.integration import rig

PREFIX = "bench_art_"
SEED = 7
XCOM_SHARE = 3  # one task instance in this many has XComs
LINE = "[2023-01-01T00:00:00.000+0000] {{bench.py:1}} INFO - line {n} of a generated task log, padded: {pad}\n"

XCOM_SCRIPT = r"""
import json, random, sys
import airflow.models  # noqa: F401
from airflow.models import DagRun, TaskInstance, XCom
from airflow.utils.session import create_session

spec = json.load(sys.stdin)
rng = random.Random(spec["seed"])
rows, count, size = [], 0, 0
with create_session() as session:
    runs = {(d, r): i for d, r, i in session.query(DagRun.dag_id, DagRun.run_id, DagRun.id).filter(
        DagRun.dag_id.in_(spec["dags"])).all()}
    tis = session.query(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index
                        ).filter(TaskInstance.dag_id.in_(spec["dags"])).order_by(
                        TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id).all()
    for dag_id, run_id, task_id, map_index in tis:
        if rng.randrange(spec["share"]):
            continue
        for k in range(rng.randint(1, 3)):
            text = "x" * rng.randint(100, 50_000)
            value = json.dumps({"key": k, "text": text}).encode()
            rows.append(dict(dag_run_id=runs[dag_id, run_id], dag_id=dag_id, run_id=run_id, task_id=task_id,
                             map_index=map_index, key="return_value" if k == 0 else f"extra_{k}", value=value))
            count, size = count + 1, size + len(value)
        if len(rows) >= 500:
            session.bulk_insert_mappings(XCom, rows)
            rows = []
    session.bulk_insert_mappings(XCom, rows)
print(json.dumps({"xcoms": count, "xcom_bytes": size}))
"""


def seed(source: rig.AirflowServer, dag_ids: list[str], runs: int, task_ids: list[str]) -> dict[str, int]:
    """History, XComs and log files of the artifact DAGs on the source."""
    from bench import workload

    workload.declare_dags(source, {d: task_ids for d in dag_ids}, "bench_artifact_dags.py")
    seeded = workload.seed_history(source, dag_ids, runs, task_ids)
    xcoms = json.loads(source.python(XCOM_SCRIPT, stdin=json.dumps(
        {"dags": dag_ids, "seed": SEED, "share": XCOM_SHARE}), timeout=1800).strip().splitlines()[-1])
    rng = random.Random(SEED)
    logs = size = 0
    for dag_id, run_id, task_id, map_index, tries in source.sql(
            "SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance WHERE dag_id = ANY(%s) "
            "ORDER BY 1, 2, 3, 4", (dag_ids,)):
        folder = source.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, tries + 1):
            wanted, lines = rng.randint(2_000, 50_000), []
            while sum(map(len, lines)) < wanted:
                lines.append(LINE.format(n=len(lines), pad="p" * rng.randint(10, 80)))
            text = "".join(lines)
            (folder / f"attempt={attempt}.log").write_text(text)
            logs, size = logs + 1, size + len(text)
    return {**seeded, **xcoms, "logs": logs, "log_bytes": size}


def reset(target: rig.AirflowServer, dag_ids: list[str]) -> None:
    """Take the artifact DAGs' XComs and log files off the target; their history stays."""
    target.sql("DELETE FROM xcom WHERE dag_id = ANY(%s)", (dag_ids,))
    for dag_id in dag_ids:
        for folder in (target.home / "logs").glob(f"dag_id={dag_id}"):
            for path in sorted(folder.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            folder.rmdir()


@dataclass
class CeilingResult:
    threads: int
    xcoms: int
    logs: int
    bytes: int
    seconds: float
    requests: int


class _Copier(ThreadSessions):
    """K threads, each with its own sessions, sharing one login per server (logins are rate limited)."""

    def __init__(self, source: rig.AirflowServer, target: rig.AirflowServer) -> None:
        super().__init__(source, target)
        self.xcoms = self.logs = self.bytes = 0

    def _get(self, session: requests.Session, url: str, **params: Any) -> requests.Response:
        answer = session.get(url, params=params, timeout=600, allow_redirects=False)
        if answer.status_code >= 300:
            raise RuntimeError(f"GET {url} {params}: {answer.status_code} {answer.text[:300]}")
        return answer

    def plan_dag(self, dag_id: str) -> tuple[list[tuple], list[tuple]]:
        """(task instances with XComs, tries) of one DAG: its task instances and runs read once, its
        XComs listed through the REST API (the Airflow 2 listing names the run by its date)."""
        source, _ = self.sessions()
        base = f"{self.source_url}/api/starship"
        tis = self._get(source, f"{base}/task_instances", dag_id=dag_id, limit=10_000_000, offset=0).json()
        runs = self._get(source, f"{base}/dag_runs", dag_id=dag_id, limit=10_000_000, offset=0).json()
        by_date = {run["execution_date"].replace(" ", "T"): run["run_id"] for run in runs["dag_runs"]}
        with_xcoms, offset, total = set(), 0, None
        while total is None or offset < total:
            page = self._get(source, f"{self.source_url}/api/v1/dags/{dag_id}/dagRuns/~/taskInstances/~/xcomEntries",
                             limit=1000, offset=offset).json()
            total = page["total_entries"]
            entries = page["xcom_entries"]
            if not entries:
                break
            offset += len(entries)
            with_xcoms |= {(by_date[e["execution_date"]], e["task_id"], e["map_index"]) for e in entries}
        tries = [(ti["run_id"], ti["task_id"], ti["map_index"], n) for ti in tis["task_instances"]
                 for n in range(1, int(ti["try_number"] or 0) + 1)]
        with self.lock:
            self.requests += 3 + (offset // 100)
        return [(dag_id, *key) for key in sorted(with_xcoms)], [(dag_id, *t) for t in tries]

    def copy_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
        source, target = self.sessions()
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
        found = self._get(source, f"{self.source_url}/api/starship/xcom", **params).json()
        for xcom in found:
            done = target.post(f"{self.target_url}/api/starship/xcom", json={**params, "key": xcom["key"],
                                                                              "value": xcom["value"]}, timeout=600)
            if done.status_code >= 300:
                raise RuntimeError(f"POST xcom {params}: {done.status_code} {done.text[:300]}")
        with self.lock:
            self.xcoms += len(found)
            self.bytes += sum(len(x["value"]) * 3 // 4 for x in found)
            self.requests += 1 + len(found)

    def copy_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> None:
        source, target = self.sessions()
        params = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
                  "try_number": try_number}
        body = self._get(source, f"{self.source_url}/api/starship/task_log", **params).content
        done = target.post(f"{self.target_url}/api/starship/task_log", params=params, data=body, timeout=600,
                           headers={"Content-Type": "application/octet-stream"})
        if done.status_code >= 300:
            raise RuntimeError(f"POST task_log {params}: {done.status_code} {done.text[:300]}")
        with self.lock:
            self.logs += 1
            self.bytes += len(body)
            self.requests += 2


def ceiling(source: rig.AirflowServer, target: rig.AirflowServer, dag_ids: list[str], threads: int) -> CeilingResult:
    copier = _Copier(source, target)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        planned = list(pool.map(copier.plan_dag, dag_ids))
        jobs = [pool.submit(copier.copy_xcoms, *ti) for xcoms, _ in planned for ti in xcoms]
        jobs += [pool.submit(copier.copy_log, *attempt) for _, tries in planned for attempt in tries]
        for job in jobs:
            job.result()
    return CeilingResult(threads, copier.xcoms, copier.logs, copier.bytes, round(time.monotonic() - started, 1),
                         copier.requests)


def artifact_window(target: rig.AirflowServer, run_id: str) -> float:
    """Seconds from the first artifacts task's start to the last one's end, in one run of the DAG."""
    (seconds,), = target.sql(
        "SELECT EXTRACT(EPOCH FROM max(end_date) - min(start_date)) FROM task_instance "
        "WHERE dag_id = 'starship_migration' AND run_id = %s AND task_id = 'history.xcoms_logs_notes' "
        "AND state = 'success'", (run_id,))
    return round(float(seconds or 0), 1)


def parity(source: rig.AirflowServer, target: rig.AirflowServer, dag_ids: list[str]) -> str:
    """Every XCom (stored bytes) and every log file equal on both sides, or what differs."""
    query = ("SELECT dag_id, run_id, task_id, map_index, key, md5(value) FROM xcom WHERE dag_id = ANY(%s) "
             "ORDER BY 1, 2, 3, 4, 5")
    src, tgt = source.sql(query, (dag_ids,)), target.sql(query, (dag_ids,))
    if src != tgt:
        return f"DIFFERENT: {len(src)} XComs on the source, {len(tgt)} equal of {len(tgt)} on the target"
    files = defaultdict(int)
    for dag_id in dag_ids:
        for path in (source.home / "logs" / f"dag_id={dag_id}").rglob("*.log"):
            copy = target.home / "logs" / path.relative_to(source.home / "logs")
            files["equal" if copy.exists() and copy.read_bytes() == path.read_bytes() else "different"] += 1
    if files["different"]:
        return f"DIFFERENT: {files['different']} of {sum(files.values())} log files differ or are missing"
    return "equal"
