"""The benchmark: one invocation, one machine, one freshly generated source history.

    bash scripts/bench.sh                      # 20 DAGs x 500 runs x 5 tasks, the README's table
    bash scripts/bench.sh --dags 2 --runs 20 --tasks 2 --rss-sizes 200,1000   # a smoke run

Phases, each on the same Airflow 2.11 source and target (real webservers, real PostgreSQL):

1. generate the source history and a few hundred pools, variables and connections;
2. the raw ceiling (``bench/ceiling.py``) with 1 and K threads;
3. the migration DAG, full history, run by the target's scheduler with the LocalExecutor, then
   ``--repeat`` - 1 more times, each after one more raw ceiling run with K threads (alternated
   pairs: ours / raw ceiling is the median of the pairs' ratios);
4. an idle incremental sync (``starship_sync``, twice: the second finds nothing to do);
5. the same full history with the CeleryExecutor and two workers on the local Redis;
6. Starship's own operator on the source, at the largest per-DAG run limit it survives, and the
   migration DAG on that same limited workload;
7. the migration DAG on one DAG of 10,000 and one of 100,000 task instances, then the larger
   one again with a full comparison against what is now on the target (peak memory);
8. XComs and logs (``bench/artifacts.py``): the artifact ceiling and ours in alternated pairs, then
   the whole migration of the artifact DAGs with every resource.

Longer than the project's 400 lines: one class that runs the phases in order, each a method
beside the others it builds on (the table is ``bench/table.py``).

Prints one table and writes every number to ``bench-results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import artifacts, ceiling, measure, starship_operator, workload
from bench.table import ceiling_name, profile, ratio, table
from tests.integration import parity, rig

HISTORY_RESOURCES = ("dag_runs", "task_instances", "task_instance_history")
BENCH_SYNC_DAG = """
# The scheduled sync's Airflow DAG exactly, without its schedule: the benchmark triggers it itself.
# (Airflow's safe mode parses only files that mention both "airflow" and "dag".)
from starship_dags.dags import SYNC_DAG_ID, build_migration_dag

dag = build_migration_dag(SYNC_DAG_ID, sync=True, schedule=None)
"""
REDIS_DB = 11  # the Celery broker's Redis database, flushed before use
STARSHIP_LIMIT = 1024 * 1024  # the webserver's default allowed_payload_size


@dataclass
class OurRun:
    label: str
    state: str
    seconds: float
    rows: int
    source_requests: int  # as the source webserver's access log counts them
    target_requests: int
    peak_rss_mb: float | None
    start_rss_mb: float | None
    tasks: int  # task instances that ran (not those skipped before they started)
    task_seconds: float  # sum of the task instances' durations
    work_seconds: float  # the part of that spent inside the operators' work
    work_cpu_seconds: float  # CPU time of the task processes inside the operators' work (the client's share)
    cpu: dict[str, float] = field(default_factory=dict)
    by_task: dict[str, dict[str, Any]] = field(default_factory=dict)  # per task id: count, durations, window
    summaries: dict[str, Any] = field(default_factory=dict, repr=False)
    parity: str = "not checked"

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.shape = workload.Shape(args.dags, args.runs, args.tasks)
        self.results: dict[str, Any] = {"shape": str(self.shape), "machine": {"cpus": os.cpu_count()}}
        env = rig.AirflowEnv("2.11-bench").ensure()
        env.install_project()
        # both serve Starship's /task_log, as Astronomer environments do (the artifact phase)
        self.source = rig.AirflowServer("bench-source", env, astro_logs=True)
        self.target = rig.AirflowServer("bench-target", env, dags=[rig.MIGRATION_DAG], astro_logs=True,
                                        extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                                                   # Airflow's default: the test rig's 5 s re-parses and
                                                   # re-serialises the migration DAG every 5 s
                                                   "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
                                                   **dict(args.target_env)})
        (self.target.dags_folder / "starship_sync.py").write_text(BENCH_SYNC_DAG)
        self.scheduler: list = []
        self.workers: list = []

    # ------------------------------------------------------------------ servers

    def start(self) -> None:
        self.source.start()
        self.target.extra_env.update(self.source.connection_env("starship_source"))
        self.target.extra_env.update(self.target.connection_env("starship_target"))
        self.target.start()
        self.scheduler = self.target.start_scheduler()

    def stop(self) -> None:
        for server in (self.target, self.source):
            server.stop(drop=not os.environ.get("STARSHIP_DAGS_KEEP_HOMES"))

    def cpu_meter(self) -> measure.CpuMeter:
        return measure.CpuMeter({
            "source webserver": measure.pgids([self.source._web]),
            "target webserver": measure.pgids([self.target._web]),
            "target scheduler and tasks": measure.pgids(self.scheduler) + measure.pgids(self.workers),
            "source scheduler and tasks": measure.pgids([p for p in self.source.procs if p is not self.source._web]),
        })

    def use_celery(self, on: bool) -> None:
        """Restart the target's scheduler with the CeleryExecutor and two workers, or back to local."""
        self.target.stop_processes(self.scheduler + self.workers)
        self.workers = []
        celery = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + rig.sql_url(self.target.db).replace("+psycopg2", ""),
        }
        if on:
            self.target.python(f"import redis; redis.Redis(host='127.0.0.1', port=6379, db={REDIS_DB}).flushdb()")
            self.target.extra_env.update(celery)
            for n in (1, 2):
                self.workers.append(self.target._spawn(
                    ["celery", "worker", "--concurrency", str(self.args.celery_concurrency),
                     "--celery-hostname", f"bench{n}@%h", "--skip-serve-logs"], f"celery-worker-{n}.log"))
            self._wait_for_workers()
        else:
            for key in celery:
                self.target.extra_env.pop(key, None)
        self.scheduler = self.target.start_scheduler()

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            logs = [(self.target.home / f"celery-worker-{n}.log").read_text(errors="replace")
                    if (self.target.home / f"celery-worker-{n}.log").exists() else "" for n in (1, 2)]
            if all(" ready." in text for text in logs):
                return
            if any(proc.poll() is not None for proc in self.workers):
                raise RuntimeError("a Celery worker exited:\n" + "\n".join(text[-3000:] for text in logs))
            time.sleep(1)
        raise RuntimeError("the Celery workers did not become ready in 180 s")

    # ------------------------------------------------------------------ the migration DAG

    def reset_target(self, dag_ids: list[str]) -> None:
        parity.reset_history(self.target, dag_ids)
        # Every phase starts from tables without the dead rows of the phases before it.
        self.target.sql("VACUUM ANALYZE dag_run, task_instance, task_instance_history, xcom, variable")

    def run_ours(self, label: str, conf: dict[str, Any], *, dag_id: str = rig.MIGRATION_DAG.stem,
                 timeout: float | None = None) -> OurRun:
        conf = {"validate": False, **conf}
        run_id = f"bench_{label}_{int(time.time())}"
        meter = self.cpu_meter()
        source_before, target_before = measure.access_lines(self.source), measure.access_lines(self.target)
        meter.start()
        self.target.cli("dags", "trigger", dag_id, "-r", run_id, "-c", json.dumps(conf))
        self.last_run_id = run_id
        state, seconds = self.target.wait_for_run(dag_id, run_id, timeout or self.args.timeout)
        cpu = meter.stop()
        result = rig.collect_run(self.target, dag_id, run_id)
        summaries = result.summaries
        history = [s for s in summaries.values() if s["resource"] in HISTORY_RESOURCES]
        peaks = [s["memory_peak_mb"] for s in summaries.values() if s.get("memory_peak_mb")]
        starts = [s["memory_start_mb"] for s in summaries.values() if s.get("memory_start_mb")]
        per_task = self.target.sql(
            "SELECT task_id, count(*), coalesce(sum(duration), 0), EXTRACT(EPOCH FROM max(end_date) - min(start_date)) "
            "FROM task_instance WHERE dag_id = %s AND run_id = %s AND state <> 'skipped' "
            "GROUP BY task_id ORDER BY min(start_date)",
            (dag_id, run_id))  # the task instances that ran (skipped ones never start a process)
        by_task = {task_id: {"count": count, "seconds": round(float(total), 1), "window": round(float(window or 0), 1)}
                   for task_id, count, total, window in per_task}
        run = OurRun(
            label=label, state=state, seconds=seconds, rows=sum(s["created"] for s in history),
            source_requests=measure.access_lines(self.source) - source_before,
            target_requests=measure.access_lines(self.target) - target_before,
            peak_rss_mb=round(max(peaks), 1) if peaks else None,
            start_rss_mb=round(max(starts), 1) if starts else None,
            tasks=sum(count for _, count, _, _ in per_task),
            task_seconds=round(sum(float(total) for _, _, total, _ in per_task), 1),
            work_seconds=round(sum(s.get("seconds") or 0 for s in summaries.values()), 1),
            work_cpu_seconds=round(sum(s.get("cpu_seconds") or 0 for s in summaries.values()), 1),
            cpu=cpu, by_task=by_task, summaries=summaries,
        )
        log(f"{label}: {state} in {seconds:.1f} s, {run.rows} rows ({run.rows_per_second:.0f} rows/s), "
            f"{run.source_requests} source requests, peak task RSS {run.peak_rss_mb} MB, CPU {cpu}")
        if state != "success":
            log(f"{label}: failed tasks: {[t for t, s in result.task_states.items() if s != 'success']}\n"
                + result.explain()[:3000])
        return run

    def check_parity(self, run: OurRun, dag_ids: list[str]) -> None:
        try:
            parity.assert_parity(self.source, self.target, dags=dag_ids)
            parity.assert_no_duplicates_or_orphans(self.source, self.target, dags=dag_ids)
            run.parity = "equal"
        except AssertionError as err:
            run.parity = f"DIFFERENT: {str(err)[:300]}"
        log(f"{run.label}: parity {run.parity}")

    def target_counts(self, dag_ids: list[str]) -> tuple[int, int]:
        """Runs and task instances of these DAGs on the target."""
        return tuple(self.target.sql(
            "SELECT (SELECT count(*) FROM dag_run WHERE dag_id = ANY(%s)), "
            "(SELECT count(*) FROM task_instance WHERE dag_id = ANY(%s))", (dag_ids, dag_ids))[0])

    def history_conf(self, dag_ids: list[str], **extra: Any) -> dict[str, Any]:
        tasks = {"history_tasks": self.args.history_tasks} if self.args.history_tasks else {}
        return {"resources": ["dag_history"], "dag_ids": dag_ids, **tasks, **extra}

    # ------------------------------------------------------------------ phases

    def generate(self) -> None:
        started = time.monotonic()
        shape = self.shape
        workload.declare_dags(self.source, {d: shape.task_ids for d in shape.dag_ids}, "bench_dags.py")
        seeded = workload.seed_history(self.source, shape.dag_ids, shape.runs, shape.task_ids)
        workload.seed_settings(self.source, self.args.pools, self.args.variables, self.args.connections)
        self.results["generated"] = {**seeded, "pools": self.args.pools, "variables": self.args.variables,
                                     "connections": self.args.connections,
                                     "seconds": round(time.monotonic() - started, 1)}
        log(f"generated {shape}: {seeded} in {time.monotonic() - started:.0f} s")

    def raw_ceiling(self) -> None:
        # every thread count sending the rows as served, then the most threads leaving out NULL
        # columns; the most threads as served come last, right before ours (the first pair)
        most = max(self.args.threads)
        runs = [*((t, False) for t in sorted(self.args.threads) if t != most), (most, True), (most, False)]
        done = [self.ceiling_run(threads, lean) for threads, lean in runs]
        self.results["ceiling"] = sorted(done, key=lambda c: (c["lean"], c["threads"]))  # as the table lists them

    def ceiling_run(self, threads: int, lean: bool) -> dict[str, Any]:
        self.reset_target(self.shape.dag_ids)
        meter = self.cpu_meter()
        meter.start()
        result = ceiling.copy_history(self.source, self.target, self.shape.dag_ids, threads, lean=lean)
        cpu = meter.stop()
        log(f"{ceiling_name(result.threads, result.lean)}: {result.rows} rows in {result.seconds:.1f} s "
            f"({result.rows_per_second:.0f} rows/s), {result.requests} requests, CPU {cpu}")
        return {**asdict(result), "rows_per_second": round(result.rows_per_second, 1), "cpu": cpu}

    def ours_local(self) -> OurRun:
        """Ours after the raw ceiling's last run, then ``--repeat`` - 1 more pairs of the raw
        ceiling (most threads, rows as served) and ours, alternated: the machine's pace drifts
        between minutes, so the ratio judged is the median of the pairs' own ratios."""
        last_ceiling = next((c for c in reversed(self.results.get("ceiling") or []) if not c["lean"]), None)
        # without the ceiling phase there is nothing to pair with: ours runs once
        rounds = max(1, self.args.repeat) if last_ceiling is not None else 1
        runs, pairs = [], []
        for number in range(1, rounds + 1):
            if number > 1:
                last_ceiling = self.ceiling_run(max(self.args.threads), False)
            self.reset_target(self.shape.dag_ids)
            run = self.run_ours("local" if number == 1 else f"local_{number}", self.history_conf(self.shape.dag_ids))
            self.check_parity(run, self.shape.dag_ids)
            runs.append(run)
            if last_ceiling is not None:
                pairs.append(_pair(last_ceiling, run))
                log(f"pair {number}: raw ceiling {last_ceiling['seconds']:.1f} s, ours {run.seconds:.1f} s, "
                    f"ratio {pairs[-1]['ratio']}")
        self.results["ours_local"] = _public(runs[0])
        if pairs:
            self.results["pairs"] = pairs
        return runs[0]

    def idle_sync(self) -> None:
        # The generated runs have no XComs or logs, but finding that out costs one request per task
        # instance (Starship serves XComs and logs per task instance): the sync here copies settings
        # and history, as the ceiling does.
        conf = {"resources": ["pools", "variables", "connections", "dag_history"]}
        first = self.run_ours("sync_first", conf, dag_id="starship_sync")
        idle = self.run_ours("sync_idle", conf, dag_id="starship_sync")
        discovered = [s for s in idle.summaries.values() if s["resource"] == "dag_runs"]
        per_dag_calls = {}
        for summary in idle.summaries.values():
            if summary.get("dag_id"):
                per_dag_calls[summary["dag_id"]] = per_dag_calls.get(summary["dag_id"], 0) + summary["source_api_calls"]
        dags = max(len(discovered), 1)
        self.results["idle_sync"] = {
            "first": _public(first), "idle": _public(idle), "dags": len(discovered),
            "source_requests": idle.source_requests,
            "source_requests_per_dag": round(idle.source_requests / dags, 2),
            "max_history_calls_of_one_dag": max(per_dag_calls.values(), default=0),
            "created_or_updated": sum(s["created"] + s["updated"] for s in idle.summaries.values()),
        }
        log(f"idle sync: {idle.source_requests} source requests for {dags} DAGs; "
            f"per DAG at most {self.results['idle_sync']['max_history_calls_of_one_dag']} history calls")

    def ours_celery(self) -> None:
        self.use_celery(True)
        try:
            self.reset_target(self.shape.dag_ids)
            run = self.run_ours("celery", self.history_conf(self.shape.dag_ids))
            self.check_parity(run, self.shape.dag_ids)
            self.results["ours_celery"] = _public(run)
        finally:
            self.use_celery(False)

    def starship(self) -> None:
        """Starship's operator at the largest per-DAG run limit it survives, then ours at that limit."""
        source, dag_ids, shape = self.source, self.shape.dag_ids, self.shape
        starship_operator.connect(source, self.target)
        source_scheduler = source.start_scheduler()
        attempts: list[dict[str, Any]] = []

        def attempt(limit: int) -> bool:
            self.reset_target(dag_ids)
            meter = self.cpu_meter()
            meter.start()
            state, seconds, why = starship_operator.run(source, dag_ids, limit, self.args.timeout)
            cpu = meter.stop()
            want = min(limit, shape.runs)
            runs, tis = self.target_counts(dag_ids)
            complete = state == "success" and runs == want * len(dag_ids) and tis == want * len(dag_ids) * shape.tasks
            attempts.append({"limit": limit, "state": state, "seconds": round(seconds, 1), "runs": runs, "tis": tis,
                             "complete": complete, "why": why, "cpu": cpu})
            log(f"Starship operator, limit {limit}: {state} in {seconds:.1f} s, {runs} runs and {tis} task "
                f"instances on the target{'' if complete else ' (incomplete) ' + why}")
            return complete

        try:
            best = shape.runs if attempt(shape.runs) else None
            if best is None:
                low, high = 0, shape.runs
                guess = min(self._starship_limit_estimate(), shape.runs - 1)
                for _ in range(self.args.starship_attempts):
                    if guess <= low or guess >= high:
                        break
                    if attempt(guess):
                        low = guess
                    else:
                        high = guess
                    if high - low <= max(10, low // 10):
                        break
                    guess = _round_limit(low + (high - low) / 2)
                best = low or None
        finally:
            source.stop_processes(source_scheduler)
        self.results["starship_operator"] = {"attempts": attempts, "largest_limit": best}
        if not best:
            log("Starship's operator completed no attempted limit")
            return
        survived = [a for a in attempts if a["limit"] == best and a["complete"]][-1]
        self.reset_target(dag_ids)
        ours = self.run_ours("limited", self.history_conf(dag_ids, runs_limit=best))
        self.check_parity_limited(ours, dag_ids, best)
        starship_rows = survived["runs"] + survived["tis"]
        self.results["starship_operator"].update({
            "rows": starship_rows, "seconds": survived["seconds"],
            "rows_per_second": round(starship_rows / survived["seconds"], 1) if survived["seconds"] else None,
            "ours": _public(ours),
        })

    def artifacts(self) -> None:
        """XComs and logs: the artifact ceiling and ours, in ``--repeat`` alternated pairs on a target that
        has the artifact DAGs' history already; then the whole migration of those DAGs, every resource."""
        args = self.args
        shape = workload.Shape(args.artifact_dags, args.artifact_runs, args.tasks)
        dag_ids = [f"{artifacts.PREFIX}{n:03d}" for n in range(shape.dags)]
        started = time.monotonic()
        seeded = artifacts.seed(self.source, dag_ids, shape.runs, shape.task_ids)
        log(f"artifacts: generated {seeded} in {time.monotonic() - started:.0f} s")
        conf = {"resources": ["dag_history", "xcoms", "task_logs"], "dag_ids": dag_ids}
        extra = {"concurrency": args.artifact_concurrency} if args.artifact_concurrency else {}
        if extra:  # threads per XCom or log task, as a user sets them
            self.set_connection_extra(extra)
        pairs = []
        for number in range(1, max(1, args.repeat) + 1):
            # the ceiling posts XComs into runs the target has: the history first, not timed
            self.reset_target(dag_ids)
            artifacts.reset(self.target, dag_ids)
            self.run_ours(f"artifact_history_{number}", self.history_conf(dag_ids))
            result = artifacts.ceiling(self.source, self.target, dag_ids, max(args.threads))
            log(f"artifact ceiling: {result}")
            # ours from an empty target, as a first migration: its XCom and log tasks are timed
            self.reset_target(dag_ids)
            artifacts.reset(self.target, dag_ids)
            run = self.run_ours(f"artifacts_{number}", conf)
            window = artifacts.artifact_window(self.target, self.last_run_id)
            equal = artifacts.parity(self.source, self.target, dag_ids)
            xcom_calls = sum(s["source_api_calls"] for s in run.summaries.values() if s["resource"] == "xcoms")
            pairs.append({"ceiling": asdict(result), "ours_seconds": window, "ours_run_seconds": round(run.seconds, 1),
                          "ours_state": run.state, "parity": equal, "xcom_source_calls": xcom_calls,
                          "ratio": round(result.seconds / window, 3) if window else 0.0})
            log(f"artifact pair {number}: ceiling {result.seconds:.1f} s, ours {window:.1f} s "
                f"(run {run.seconds:.1f} s), parity {equal}")
        self.reset_target(dag_ids)
        artifacts.reset(self.target, dag_ids)
        whole = self.run_ours("artifacts_whole", {"dag_ids": dag_ids})  # every resource: the form's default
        self.results["artifacts"] = {
            "shape": str(shape), "generated": seeded, "pairs": pairs, "threads": max(args.threads),
            "concurrency": args.artifact_concurrency or "default",
            "task_instances": seeded.get("tis"),
            "whole": {**_public(whole), "parity": artifacts.parity(self.source, self.target, dag_ids)},
        }

    def set_connection_extra(self, extra: dict[str, Any]) -> None:
        """Restart the target's scheduler with these extras on both connections."""
        self.target.stop_processes(self.scheduler)
        for conn_id, server in (("starship_source", self.source), ("starship_target", self.target)):
            self.target.extra_env.update(server.connection_env(conn_id, extra=extra))
        self.scheduler = self.target.start_scheduler()

    def check_parity_limited(self, run: OurRun, dag_ids: list[str], limit: int) -> None:
        want_runs = min(limit, self.shape.runs) * len(dag_ids)
        runs, tis = self.target_counts(dag_ids)
        run.parity = "equal" if (runs, tis) == (want_runs, want_runs * self.shape.tasks) else (
            f"DIFFERENT: {runs} runs and {tis} task instances, expected {want_runs} and {want_runs * self.shape.tasks}")
        log(f"{run.label}: {run.parity}")

    def _starship_limit_estimate(self) -> int:
        """The run limit at which one DAG's task instances, as Starship's hook sends them, fill 1 MiB."""
        sample = self.source.client().get("task_instances", dag_id=self.shape.dag_ids[0], limit=20, offset=0)
        items = sample["task_instances"]
        per_ti = len(json.dumps(items).encode()) / max(len(items), 1)  # requests' json= uses these separators
        return _round_limit(STARSHIP_LIMIT / (per_ti * self.shape.tasks))

    def memory(self) -> None:
        out = []
        for size in self.args.rss_sizes:
            dag_id = workload.rss_dag_id(size)
            runs = math.ceil(size / self.shape.tasks)
            workload.declare_dags(self.source, {dag_id: self.shape.task_ids}, f"{dag_id}.py")
            workload.seed_history(self.source, [dag_id], runs, self.shape.task_ids)
            self.reset_target([dag_id])
            run = self.run_ours(f"rss_{size}", self.history_conf([dag_id]))
            by_task = {s["resource"]: s.get("memory_peak_mb") for s in run.summaries.values()
                       if s["resource"] in HISTORY_RESOURCES}
            out.append({"task_instances": runs * self.shape.tasks, "runs": runs, "dag_id": dag_id,
                        "peak_rss_mb": run.peak_rss_mb, "start_rss_mb": run.start_rss_mb,
                        "peak_by_task": by_task, "state": run.state, "seconds": round(run.seconds, 1),
                        "rows": run.rows})
        # The largest DAG again, with a full comparison: nothing to write, but every task instance
        # is read on both servers and compared (the target's keys are held for the whole DAG).
        if out:
            last = out[-1]
            # This machine's PostgreSQL runs without autovacuum: the planner would still think the
            # DAG's tables as small as at the last reset, and Starship's page query (task instances
            # of the runs at an offset) turns into a nested loop over every row, about a minute a
            # page at 100,000 rows. A server's autovacuum analyzes the tables after such a load.
            self.target.sql("ANALYZE dag_run, task_instance, task_instance_history")
            run = self.run_ours(f"rss_{last['task_instances']}_full", self.history_conf(
                [last["dag_id"]], full_comparison=True))
            last["full_comparison"] = {"peak_rss_mb": run.peak_rss_mb, "start_rss_mb": run.start_rss_mb,
                                       "state": run.state, "seconds": round(run.seconds, 1),
                                       "created": run.rows, "target_requests": run.target_requests}
        self.results["memory"] = out


def _round_limit(value: float) -> int:
    return max(10, int(value // 10 * 10))


def _public(run: OurRun) -> dict[str, Any]:
    data = asdict(run)
    data.pop("summaries")
    data["rows_per_second"] = round(run.rows_per_second, 1)
    return data


# ---------------------------------------------------------------------- the table


def _pair(ceiling_run: dict[str, Any], run: OurRun) -> dict[str, Any]:
    """One raw-ceiling run and the run of ours right after it, on the same rows."""
    return {
        "ceiling_seconds": ceiling_run["seconds"], "ceiling_rows_per_second": ceiling_run["rows_per_second"],
        "ours_seconds": round(run.seconds, 1), "ours_rows_per_second": round(run.rows_per_second, 1),
        "ours_state": run.state, "ours_parity": run.parity,
        "ratio": round(ratio(run.rows_per_second, ceiling_run["rows_per_second"]) or 0.0, 3),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", type=int, default=20)
    parser.add_argument("--runs", type=int, default=500, help="runs per DAG")
    parser.add_argument("--tasks", type=int, default=5, help="tasks per run")
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--variables", type=int, default=300)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4],
                        help="thread counts of the raw ceiling client, comma separated")
    parser.add_argument("--repeat", type=int, default=3,
                        help="pairs of the raw ceiling (most threads) and ours, LocalExecutor, run alternately; "
                        "ours / raw ceiling is the median of the pairs' ratios")
    parser.add_argument("--rss-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000],
                        help="task instances of the single-DAG memory runs, comma separated")
    parser.add_argument("--celery-concurrency", type=int, default=8, help="task slots per Celery worker")
    parser.add_argument("--starship-attempts", type=int, default=4, help="limits to try below the full history")
    parser.add_argument("--skip", default="",
                        help="phases to leave out: ceiling,local,idle,celery,starship,memory,artifacts")
    parser.add_argument("--artifact-dags", type=int, default=4, help="DAGs of the artifact phase")
    parser.add_argument("--artifact-runs", type=int, default=100, help="runs per DAG of the artifact phase")
    parser.add_argument("--artifact-concurrency", type=int, default=None,
                        help="extra.concurrency of both connections in the artifact phase (default: the package's)")
    parser.add_argument("--target-env", action="append", default=[], metavar="KEY=VALUE",
                        type=lambda s: tuple(s.split("=", 1)),
                        help="an environment variable for the target's Airflow (e.g. AIRFLOW__CORE__PARALLELISM=8); "
                        "repeatable")
    parser.add_argument("--history-tasks", type=int, default=None,
                        help="the form's History tasks for every run of the migration DAG (default: the form's default)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one DAG run may take")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not rig.pg_reachable():
        log(f"PostgreSQL is not reachable at {rig.PG_HOST}:{rig.PG_PORT}")
        return 2
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start()
        bench.generate()
        phases = [("ceiling", bench.raw_ceiling), ("local", bench.ours_local), ("idle", bench.idle_sync),
                  ("celery", bench.ours_celery), ("starship", bench.starship), ("memory", bench.memory),
                  ("artifacts", bench.artifacts)]
        for name, phase in phases:
            if name in skip:
                continue
            log(f"phase {name}")
            phase()
            args.out.write_text(json.dumps(bench.results, indent=2, default=str))
    finally:
        bench.stop()
    bench.results["seconds"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(bench.results, indent=2, default=str))
    print(f"\nBenchmark: {bench.shape} (+ {args.pools} pools, {args.variables} variables, "
          f"{args.connections} connections), Airflow 2.11 -> 2.11, {os.cpu_count()} CPUs, "
          f"{bench.results['seconds']:.0f} s in all\n")
    print(table(bench.results))
    print("\nCPU seconds per process group (where the time goes):")
    print(profile(bench.results))
    print(f"\nEvery number: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
