"""The run's first task, ``start``: the guard, then the DAGs whose history to copy, dealt out in batches.

``start`` is :class:`~starship_dags.operators.guard.ActiveRunGuardOperator` (stand aside for, or wait
for, the other migration DAG; skip what the form leaves out; refuse a pair of versions outside the
matrix) followed by the discovery: one task, not two, since each task costs the target's scheduler a
process start and a scheduling round.

The discovery lists the source's DAGs (all, or those named), and deals them out over a few batches
(:func:`deal`) by the rows each has to copy (:func:`dag_weight`), so that the history tasks, one per
batch, end about together. Starship's DAG list counts each DAG's runs; a page of each large DAG's
newest runs tells its task instances per run.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starship_dags import sync_state
from starship_dags.exceptions import StarshipError
from starship_dags.operators.base import as_bool, as_name_list
from starship_dags.operators.guard import ActiveRunGuardOperator

#: DAG ids of this package's own DAGs: never migrated.
MIGRATION_DAG_IDS = frozenset({"starship_migration", "starship_sync", "starship_reset_target"})
#: Default number of history tasks: the DAGs are spread over this many, which copy side by side.
HISTORY_TASKS = 4
#: What a DAG weighs when the DAGs are dealt out, counted in rows copied (:func:`dag_weight`): each
#: run to copy with its task instances, plus DAG_COPY_WEIGHT for a DAG with any: its reads, writes
#: and sync marker take about 0.9 s on a 2-core machine, as long as 130 runs of 5 task instances
#: (780 rows) take there. A DAG with nothing to copy costs about one request.
DAG_COPY_WEIGHT = 780
IDLE_DAG_WEIGHT = 18
#: Task instances per run are read off the source's PROBE_RUNS newest runs of each DAG with at
#: least PROBE_MIN_RUNS runs to copy, PROBE_THREADS DAGs at a time. Below that a DAG weighs mostly
#: its own cost, and TASKS_PER_RUN_GUESS stands in (also when the page cannot be read).
PROBE_MIN_RUNS = 50
PROBE_RUNS = 3
PROBE_THREADS = 4
TASKS_PER_RUN_GUESS = 5


class DiscoverDagsOperator(ActiveRunGuardOperator):
    """The run's first task: the guard (:class:`ActiveRunGuardOperator`: stand aside or wait for the
    other migration DAG, skip what the form leaves out), then the list of source DAGs to migrate,
    with what the history tasks need to know about each, in batches: the DAGs are dealt out over
    ``tasks`` history tasks (fewer when there are fewer DAGs) by the rows each has to copy (see
    :func:`deal` and :func:`dag_weight`). One task, not two: each task costs the target's
    scheduler a task start and a scheduling round.

    Returns a list of batches, each a list of ``{"dag_id", "marker", "marker_stored", "problem",
    "target_version", "tasks_per_run"}`` (``marker`` is None for a full comparison,
    ``marker_stored`` whether one is there; the target's Airflow version; the task instances per
    run read for the dealing, None when not read): the input of
    the mapped task group. Each task of the group costs the target's scheduler a task start (about
    a CPU-second), so a few tasks with many DAGs each copy faster than one task per DAG.
    """

    template_fields = (*ActiveRunGuardOperator.template_fields, "dag_ids", "enabled", "full_comparison", "tasks")

    def __init__(self, *, dag_ids: Any = None, enabled: Any = True, full_comparison: Any = False,
                 tasks: Any = HISTORY_TASKS, **kwargs):
        super().__init__(**kwargs)
        self.dag_ids = dag_ids
        self.enabled = enabled
        self.full_comparison = full_comparison
        self.tasks = tasks

    def go_on(self, context: Any) -> list[list[dict[str, Any]]]:
        if not as_bool(self.enabled):
            self.log.info("DAG history not selected for this run")
            return []
        try:
            tasks = int(self.tasks)
        except (TypeError, ValueError):
            raise ValueError(f"history_tasks must be a whole number of at least 1; got {self.tasks!r}") from None
        if tasks < 1:
            raise ValueError(f"history_tasks must be a whole number of at least 1; got {tasks}")
        source_dags = {d["dag_id"]: d for d in self.source_hook.get_dags()}
        excluded = MIGRATION_DAG_IDS | {context["dag"].dag_id}
        wanted = as_name_list(self.dag_ids)
        unknown = [d for d in wanted if d not in source_dags]
        if unknown:
            self.log.warning("Not on the source, ignored: %s", ", ".join(unknown))
        dag_ids = sorted((set(wanted) & set(source_dags)) if wanted else set(source_dags))
        dag_ids = [d for d in dag_ids if d not in excluded]
        # both servers' versions (read by the version check) go to the history tasks with each DAG,
        # sparing each task its requests
        target_version = self.target_hook.airflow_version
        parsed = {d["dag_id"] for d in self.target_hook.get_dags()} if self.target_hook.airflow_major >= 3 else None
        # With a full comparison the markers are ignored, but still looked up: the copy deletes a
        # DAG's marker before it writes, so that a copy stopped halfway leaves none behind.
        markers = sync_state.read_markers(self.target_hook)
        full = as_bool(self.full_comparison)
        specs, runs = [], []
        for dag_id in dag_ids:
            problem = None
            if parsed is not None and dag_id not in parsed:
                problem = (
                    "not parsed on target: deploy the DAG file to the target and let Airflow parse it, "
                    "then run again (Airflow 3 needs a DAG version for every run and task instance)"
                )
            stored = markers.get(dag_id)
            specs.append({"dag_id": dag_id, "marker": None if full else stored, "problem": problem,
                          "marker_stored": stored is not None, "target_version": target_version})
            runs.append(0 if problem else runs_to_copy(source_dags[dag_id], specs[-1]["marker"]))
        # DAGs differ in size: deal them out by the rows each has to copy (Starship's DAG list
        # counts the runs, a page of the newest runs tells the task instances per run), so that
        # the tasks end about together
        per_run = self.tasks_per_run([d for d, n in zip(dag_ids, runs) if n >= PROBE_MIN_RUNS])
        source_version = self.source_hook.airflow_version  # read by the version check already
        for spec in specs:
            spec["tasks_per_run"] = per_run.get(spec["dag_id"])
            spec["source_version"] = source_version
        weights = [dag_weight(n, spec["tasks_per_run"]) for n, spec in zip(runs, specs)]
        batches = deal(specs, weights, tasks)
        self.log.info(
            "%d DAG(s) to migrate in %d task(s): %s%s", len(specs), len(batches), ", ".join(dag_ids[:50]),
            " …" if len(dag_ids) > 50 else "",
        )
        weight = dict(zip(dag_ids, weights))
        for index, batch in enumerate(batches[:50]):
            self.log.info("task %d: %d DAG(s), weighing %d (rows to copy, plus %d per DAG with any)", index,
                          len(batch), sum(weight[spec["dag_id"]] for spec in batch), DAG_COPY_WEIGHT)
        return batches

    def tasks_per_run(self, dag_ids: list[str]) -> dict[str, float]:
        """Task instances per run of each of these DAGs, from the page of its PROBE_RUNS newest runs
        (one small request per DAG, PROBE_THREADS at a time, each thread with its own hook). A DAG
        whose page cannot be read or holds no task instance is left out: it weighs as
        TASKS_PER_RUN_GUESS, and its history task meets and reports whatever is wrong."""
        if not dag_ids:
            return {}
        local, lock = threading.local(), threading.Lock()
        threads = min(PROBE_THREADS, len(dag_ids))
        free = [self.source_hook.sibling() for _ in range(threads)]  # made here: see StarshipHook.sibling

        def probe(dag_id: str) -> float | None:
            hook = getattr(local, "hook", None)
            if hook is None:
                with lock:
                    hook = local.hook = free.pop()
            try:
                page = hook.get_task_instances(dag_id, limit=PROBE_RUNS, offset=0)
                rows = [r for r in page.get("task_instances") or [] if isinstance(r, dict)]
                run_ids = {r.get("run_id") for r in rows}
            except (StarshipError, AttributeError, TypeError, ValueError) as err:
                self.log.warning("%s: task instances per run not read (%s); weighed as %d", dag_id, err,
                                 TASKS_PER_RUN_GUESS)
                return None
            return round(len(rows) / len(run_ids), 1) if run_ids else None

        self.log.info("Reading task instances per run of %d DAG(s) with at least %d runs to copy", len(dag_ids),
                      PROBE_MIN_RUNS)
        with ThreadPoolExecutor(threads, thread_name_prefix="probe") as pool:
            found = dict(zip(dag_ids, pool.map(probe, dag_ids)))
        return {dag_id: value for dag_id, value in found.items() if value is not None}


def deal(specs: list[dict[str, Any]], weights: list[int], tasks: int) -> list[list[dict[str, Any]]]:
    """``specs`` dealt out over at most ``tasks`` batches of about equal weight: the heaviest first,
    each to the batch with the least weight so far (the first of those). A batch lists its DAGs
    in their order in ``specs``. With equal weights this is dealing round the batches in turn."""
    count = min(tasks, len(specs))
    loads, batches = [0] * count, [[] for _ in range(count)]
    for index in sorted(range(len(specs)), key=lambda i: -weights[i]):  # stable: equal weights keep their order
        lightest = min(range(count), key=lambda b: loads[b])
        batches[lightest].append(index)
        loads[lightest] += weights[index]
    return [[specs[i] for i in sorted(batch)] for batch in batches]


def dag_weight(runs: int, tasks_per_run: float | None) -> int:
    """What a DAG with ``runs`` runs to copy weighs in :func:`deal`, in rows: each run with its task
    instances (TASKS_PER_RUN_GUESS when not known), plus DAG_COPY_WEIGHT; IDLE_DAG_WEIGHT when
    there is nothing to copy."""
    if runs <= 0:
        return IDLE_DAG_WEIGHT
    per_run = TASKS_PER_RUN_GUESS if tasks_per_run is None else tasks_per_run
    return round(runs * (1 + per_run)) + DAG_COPY_WEIGHT


def runs_to_copy(dag: dict[str, Any], marker: dict[str, Any] | None) -> int:
    """About how many runs of a source DAG (an entry of Starship's DAG list) this run copies:
    those since the last sync's count when there is a marker (and those it left pending), else all."""
    runs = int(dag.get("dag_run_count") or 0)
    if marker is None:
        return runs
    return max(runs - int(marker.get("run_count") or 0), 0) + len(marker.get("pending") or [])


__all__ = ["HISTORY_TASKS", "MIGRATION_DAG_IDS", "DiscoverDagsOperator", "dag_weight", "deal", "runs_to_copy"]
