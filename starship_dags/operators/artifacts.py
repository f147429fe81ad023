"""``artifacts``: the XComs, every try's log and the notes of a DAG's planned runs, in one task per batch.

One task, not one per kind: each task costs the target a process start and a scheduling round,
and in one task the kinds are copied side by side by the same threads. Each kind is a
:class:`~starship_dags.operators.copier.Copier` (:mod:`~starship_dags.operators.xcoms`,
:mod:`~starship_dags.operators.task_logs`, :mod:`~starship_dags.operators.notes`) with a summary of its own (the report shows both as rows of their own); the task's threads take
their jobs in turn. Jobs are made as the source's pages come in: at most IN_FLIGHT_PER_THREAD per
thread are read and waiting, never the DAG's whole list, so memory stays flat however many task
instances the DAG has. Each thread has its own pair of hooks (a hook's HTTP session and retry state
are its own), made in the task's own thread with the login the task's hooks have.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import Any

from starship_dags.exceptions import StarshipError
from starship_dags.operators.base import as_name_list
from starship_dags.operators.batch import PlannedOperator
from starship_dags.operators.copier import Copier, ti_name
from starship_dags.operators.notes import NoteCopier
from starship_dags.operators.task_logs import LogCopier
from starship_dags.operators.xcoms import XComCopier
from starship_dags.report import Summary

#: Threads per task: the benchmark's artifact phase on 2 cores copied as fast with 4 as with 8
#: (docs/benchmark.md); ``extra.concurrency`` of a connection sets another number.
DEFAULT_CONCURRENCY = 4
PROGRESS_EVERY = 500
IN_FLIGHT_PER_THREAD = 8  # jobs read from the source and waiting, per copying thread
KINDS = ("xcoms", "task_logs", "notes")


class ArtifactsMigrationOperator(PlannedOperator):
    """The XComs, logs and notes (``kinds``: those selected) of the planned runs and their task instances.

    :param concurrency: threads; default: the smaller ``extra.concurrency`` of the two connections
        that set one, else DEFAULT_CONCURRENCY.
    """

    resource = "xcoms"  # the DAG's main summary is its first kind's (see start_dag)
    template_fields = (*PlannedOperator.template_fields, "kinds")

    def __init__(self, *, kinds: Any = KINDS, concurrency: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kinds = kinds
        self._concurrency = concurrency

    @cached_property
    def lock(self) -> threading.Lock:
        """The copiers' threads' lock, made when first used: an operator holding a lock cannot be
        deep-copied, which Airflow 3.0's ``dags test`` does to every task."""
        return threading.Lock()

    @cached_property
    def selected(self) -> list[str]:
        return [kind for kind in KINDS if kind in as_name_list(self.kinds)]

    @cached_property
    def concurrency(self) -> int:
        if self._concurrency is not None:
            return max(1, int(self._concurrency))
        given = [int(hook.number(None, "concurrency", 0)) for hook in (self.source_hook, self.target_hook)]
        return max(1, min([n for n in given if n > 0], default=DEFAULT_CONCURRENCY))

    def start_dag(self, spec: dict[str, Any]) -> bool:
        if not self.selected:
            return False
        self.resource = self.selected[0]  # the main summary; the other kind is a part of it
        return super().start_dag(spec)

    def copiers(self, summary: Summary) -> list[Copier]:
        kinds = {"xcoms": XComCopier, "task_logs": LogCopier, "notes": NoteCopier}
        made = []
        for number, kind in enumerate(self.selected):
            own = summary
            if number:  # a part of the main summary: its own counts, requests and notes
                own = Summary(resource=kind, dag_id=self.summary_dag_id(), dry_run=summary.dry_run)
                self.parts.append(own)
            made.append(kinds[kind](self, own, self.lock, part=bool(number)))
        return made

    def migrate(self, summary: Summary, context: Any) -> None:
        plan = self.plan
        if plan is not None and not plan.idle and plan.artifact_run_ids:
            copiers = self.copiers(summary)
            self.run_jobs(copiers)
            for copier in copiers:
                copier.finish()
        self.store_marker(summary, context)

    def run_jobs(self, copiers: list[Copier]) -> None:
        """Every copier's jobs, ``concurrency`` at a time; each job's requests count to its copier."""
        dag_id = self.dag_to_migrate
        ready = []  # (copier, its first job, the rest)
        for copier in copiers:
            jobs = copier.jobs()
            first = next(jobs, None)
            if first is not None and copier.prepare(first):
                ready.append((copier, first, jobs))
        if not ready:
            self.log.info("%s: no XComs or logs to copy", dag_id)
            return
        self._local = threading.local()
        # each thread's pair of hooks, made here (see StarshipHook.sibling), taking the versions the
        # task's own hooks know (or read, once)
        self._worker_hooks = [tuple(main.sibling(version=main.airflow_version) for main in (self.source_hook, self.target_hook))
                              for _ in range(self.concurrency)]
        self._free_hooks = list(self._worker_hooks)
        done = 0
        waiting: deque[Future[None]] = deque()

        def collect(keep: int) -> None:
            """Wait for the oldest jobs until at most ``keep`` wait (and take those already done); a
            job's unexpected error is raised here."""
            nonlocal done
            while len(waiting) > keep or (waiting and waiting[0].done()):
                waiting.popleft().result()
                done += 1
                if done % PROGRESS_EVERY == 0:
                    self.log.info("%s: %d task instances done", dag_id, done)

        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="artifacts") as pool:
                for copier, row in itertools.chain.from_iterable(
                        ((copier, row) for row in itertools.chain((first,), jobs)) for copier, first, jobs in ready):
                    waiting.append(pool.submit(self._guarded, copier, row))
                    collect(self.concurrency * IN_FLIGHT_PER_THREAD)
                collect(0)
        finally:
            for pair in self._worker_hooks:  # the summary counts every request, the threads' too
                for hook, main in zip(pair, (self.source_hook, self.target_hook)):
                    main.request_count += hook.request_count
                    main.api_calls += hook.api_calls
                    main.write_count += hook.write_count
        self.log.info("%s: %d task instances done (%s)", dag_id, done, ", ".join(c.resource for c, _, _ in ready))

    def _guarded(self, copier: Copier, row: dict[str, Any]) -> None:
        hooks = getattr(self._local, "hooks", None)
        if hooks is None:
            with self.lock:
                hooks = self._local.hooks = self._free_hooks.pop()
        source, target = hooks
        before = (source.request_count, source.api_calls, target.request_count, target.write_count)
        try:
            copier.copy_one(row, source, target)
        except (StarshipError, OSError, ValueError) as err:
            copier.add("failed", ti_name(row), str(err))
        finally:
            if copier.part:
                after = (source.request_count, source.api_calls, target.request_count, target.write_count)
                with self.lock:
                    for name, was, now in zip(("source_requests", "source_api_calls", "target_requests",
                                               "target_writes"), before, after):
                        setattr(copier.summary, name, getattr(copier.summary, name) + now - was)


__all__ = ["ArtifactsMigrationOperator"]
