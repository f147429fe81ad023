"""Work per finished task instance of a DAG's planned runs, a few threads at a time: the base of the
XCom and log tasks.

The task instances are read from the source as its pages come in; at most IN_FLIGHT_PER_THREAD per
thread are read and waiting, never the DAG's whole list, so memory stays flat however many task
instances the DAG has. Each thread has its own pair of hooks (a hook's HTTP session and retry state
are its own), made in the task's own thread with the login the task's hooks have.
"""

from __future__ import annotations

import itertools
import threading
from functools import cached_property
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starship_dags.exceptions import StarshipError
from starship_dags.operators.base import resolve_conflict
from starship_dags.operators.batch import PlannedOperator
from starship_dags.operators.rows import source_task_instances
from starship_dags.report import Summary

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

#: Task instance states whose XComs and logs are final.
FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
DEFAULT_CONCURRENCY = 4
PROGRESS_EVERY = 500
IN_FLIGHT_PER_THREAD = 8  # task instances read from the source and waiting, per copying thread


class TaskInstanceWorkOperator(PlannedOperator):
    """Per task instance work with bounded concurrency; subclasses say what one task instance needs."""

    def __init__(self, *, concurrency: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._concurrency = concurrency

    @cached_property
    def concurrency(self) -> int:
        """Threads per task: the argument, else the smaller ``extra.concurrency`` of the two
        connections that set one, else DEFAULT_CONCURRENCY (see docs/benchmark.md)."""
        if self._concurrency is not None:
            return max(1, int(self._concurrency))
        given = [int(hook.number(None, "concurrency", 0)) for hook in (self.source_hook, self.target_hook)]
        return max(1, min([n for n in given if n > 0], default=DEFAULT_CONCURRENCY))

    # -- what children implement

    def prepare(self, summary: Summary, first: dict[str, Any]) -> bool:
        """Decide source and target paths once, before the threads start; False: nothing can be copied."""
        return True

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook, summary: Summary) -> None:
        raise NotImplementedError

    # -- shared

    def migrate(self, summary: Summary, context: Any) -> None:
        self.copy_all(summary)
        self.store_marker(summary, context)

    def copy_all(self, summary: Summary) -> None:
        """Copy the finished task instances of the planned runs as the source's pages come in."""
        plan = self.plan
        wanted = set(plan.artifact_run_ids) if plan and not plan.idle else set()
        if wanted:
            self.each_task_instance(summary, self.finished_task_instances(wanted), len(wanted))

    def finished_task_instances(self, runs: set[str]) -> Iterator[dict[str, Any]]:
        """The source's finished task instances of these runs, as its pages come in."""
        plan = self.plan
        rows = source_task_instances(self.source_hook, self.dag_to_migrate, runs, estimate=self.ti_page_estimate(),
                                     depth=plan.scan_runs, total=plan.source_total)
        return (row for row in rows if row.get("state") in FINISHED_TI_STATES)

    def each_task_instance(self, summary: Summary, rows: Iterator[dict[str, Any]], runs: int) -> None:
        """:meth:`copy_one` for each row (a task instance), ``concurrency`` at a time: at most
        IN_FLIGHT_PER_THREAD per thread are read and waiting, never the DAG's whole list, so memory
        stays flat however many task instances the DAG has."""
        dag_id = self.dag_to_migrate
        first = next(rows, None)
        if first is None:
            self.log.info("%s %s: nothing to copy in %d runs", dag_id, self.resource, runs)
            return
        self._lock = threading.Lock()
        self._local = threading.local()
        if not self.prepare(summary, first):
            return
        # each thread's pair of hooks, made here (see StarshipHook.sibling), taking the versions the
        # task's own hooks know (or read, once)
        self._worker_hooks = [tuple(main.sibling(version=main.airflow_version) for main in (self.source_hook, self.target_hook))
                              for _ in range(self.concurrency)]
        self._free_hooks = list(self._worker_hooks)
        done = 0
        waiting: deque[Future[None]] = deque()

        def collect(keep: int) -> None:
            """Wait for the oldest copies until at most ``keep`` wait (and take those already done);
            a copy's unexpected error is raised here."""
            nonlocal done
            while len(waiting) > keep or (waiting and waiting[0].done()):
                waiting.popleft().result()
                done += 1
                if done % PROGRESS_EVERY == 0:
                    self.log.info("%s %s: %d task instances done", dag_id, self.resource, done)

        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.resource) as pool:
                for row in itertools.chain((first,), rows):
                    waiting.append(pool.submit(self._copy_guarded, row, summary))
                    collect(self.concurrency * IN_FLIGHT_PER_THREAD)
                collect(0)
        finally:
            for pair in self._worker_hooks:  # the summary counts every request, the threads' too
                for hook, main in zip(pair, (self.source_hook, self.target_hook)):
                    main.request_count += hook.request_count
                    main.api_calls += hook.api_calls
                    main.write_count += hook.write_count
        self.log.info("%s %s: %d task instances done in %d runs", dag_id, self.resource, done, runs)

    def _thread_hooks(self) -> tuple[StarshipHook, StarshipHook]:
        hooks = getattr(self._local, "hooks", None)
        if hooks is None:
            with self._lock:
                hooks = self._local.hooks = self._free_hooks.pop()
        return hooks

    def _copy_guarded(self, row: dict[str, Any], summary: Summary) -> None:
        source, target = self._thread_hooks()
        try:
            self.copy_one(row, source, target, summary)
        except (StarshipError, OSError, ValueError) as err:
            self.add(summary, "failed", ti_name(row), str(err))

    def add(self, summary: Summary, outcome: str, name: str, reason: str | None = None) -> None:
        with self._lock:
            summary.add(outcome, name, reason)

    def must_replace(self, summary: Summary, name: str, same: bool, differs: str) -> bool:
        """For an item already on the target: count it (unchanged, skipped, failed) or say it must be
        replaced, by the conflict policy (see ``resolve_conflict``)."""
        outcome, reason = resolve_conflict(self.conflict_policy, same, differs)
        if outcome == "replace":
            return True
        self.add(summary, outcome, name, reason)
        return False


def ti_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    """``(dag_id, run_id, task_id, map_index)``: the arguments of the hook's per-task-instance calls."""
    return row["dag_id"], row["run_id"], row["task_id"], int(row.get("map_index", -1))


def ti_name(row: dict[str, Any]) -> str:
    index = int(row.get("map_index", -1))
    return f"{row['dag_id']}/{row['run_id']}/{row['task_id']}" + (f"[{index}]" if index >= 0 else "")
