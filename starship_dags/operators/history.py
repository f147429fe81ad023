"""DAG history: discover the source's DAGs, then per DAG its runs, task instances and retry history.

The run's first task, ``start`` (the guard of :mod:`~starship_dags.operators.guard`, then the
discovery), deals the DAGs out over a few batches; per batch, one task
(:class:`DagRunsMigrationOperator`, inside a mapped task group) copies each DAG's history in turn:

1. It reads the newest page of the source's runs. If the DAG's sync marker
   (:mod:`starship_dags.sync_state`) says nothing changed, the DAG is done: one source request.
2. Otherwise it deletes the marker, compares every source run with the target by
   ``(dag_id, run_id)``, writes the missing finished runs, and makes a *plan*: which runs need
   their task instances and history checked, and how deep to read.
3. It reads source task instances only as deep as the plan says, and writes those the target
   lacks, keyed by ``(dag_id, run_id, task_id, map_index)``; then the same for retry history (key
   plus ``try_number``). Both are parts of its summary: the report shows them as rows of their own.

The plans go to the batch's later tasks (XComs, logs, validation). The last of a DAG's copy tasks
that runs stores the DAG's marker when every one of them finished cleanly for it. Queued and
running runs are skipped and counted; the next run picks them up.

Each task starts a process on the target's executor, which costs about a CPU-second whatever it
does: hence one task for runs, task instances and history, and batches of DAGs rather than a task
per DAG. And ``dag_runs``, once it succeeds, marks the later tasks with nothing to do for any DAG
of its batch as skipped before they start: all of them when every DAG is unchanged, the XCom and
log tasks when no run needs them, and tasks whose resource is not selected.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from starship_dags import sync_state
from starship_dags.operators.skipping import skip_downstream
from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipError,
    StarshipNotInstalledError,
    StarshipTLSError,
    StarshipTransportError,
)
from starship_dags.operators.base import MigrationOperator, as_bool, as_name_list
from starship_dags.operators.guard import ActiveRunGuardOperator
from starship_dags.report import Summary, failed_total
from starship_dags.translate import (
    DAG_RUN,
    HISTORY,
    TASK_INSTANCE,
    history_natural_key,
    parse_datetime,
    ti_natural_key,
    translate,
    without_null_columns,
)

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.batching import PostResult
    from starship_dags.hooks.starship import StarshipHook

#: DAG ids of this package's own DAGs: never migrated.
MIGRATION_DAG_IDS = frozenset({"starship_migration", "starship_sync"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})
RUN_PAGE = 500  # runs per GET of dag_runs
#: Task instances and retry history come in pages of runs (each run's rows whole). The first page
#: has FIRST_PAGE_RUNS runs; later ones are sized from the rows per run seen so far, for about
#: PAGE_ROWS rows, growing at most PAGE_GROWTH-fold per page and never past MAX_PAGE_RUNS runs.
#: Fewer, fuller pages spare the source's LIMIT/OFFSET queries and the target's per-request cost.
FIRST_PAGE_RUNS = 100
PAGE_ROWS = 5000
PAGE_GROWTH = 4
MAX_PAGE_RUNS = 2000
TARGET_TI_PAGE_RUNS = 500
WRITE_BATCH_RUNS = 2000  # new runs are written every this many (the hook splits by bytes)
#: Errors that would end every other DAG of the batch the same way: the batch stops at the first.
BATCH_STOPPING_ERRORS = (StarshipAuthError, StarshipNotInstalledError, StarshipTLSError, StarshipTransportError)
#: Parts of a DAG's plan that only dag_runs itself reads (the later tasks need the rest).
OWN_PLAN_KEYS = frozenset({"run_ids", "existing_run_ids", "refused_run_ids"})
#: The label of a history task in the UI: the DAG ids of its batch.
MAP_INDEX_TEMPLATE = "{{ task.source_dags | map(attribute='dag_id') | join(', ') | truncate(200, true) }}"
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


class RowKind(NamedTuple):
    """One kind of per-DAG history row: how it is told apart, read and written."""

    resource: str  # the summary's resource
    kind: str  # its key in translate's tables
    natural_key: Callable[[dict[str, Any]], Any]
    #: a page of the source's rows: (hook, dag_id, offset, limit), in runs (not for runs)
    source_page: Callable[[StarshipHook, str, int, int], dict[str, Any]] | None
    target_rows: Callable[[StarshipHook, str], Iterator[dict[str, Any]]]
    write: Callable[..., PostResult]  # (hook, rows, **options of the hook's create call)


RUN_ROWS = RowKind(
    "dag_runs", DAG_RUN, lambda row: row["run_id"], None,
    lambda hook, dag_id: hook.iter_dag_runs(dag_id, page_size=RUN_PAGE),
    lambda hook, rows, **options: hook.create_dag_runs(rows, **options),
)
TI_ROWS = RowKind(
    "task_instances", TASK_INSTANCE, ti_natural_key,
    lambda hook, dag_id, offset, limit: hook.get_task_instances(dag_id, limit=limit, offset=offset),
    lambda hook, dag_id: hook.iter_task_instances(dag_id, page_size=TARGET_TI_PAGE_RUNS),
    lambda hook, rows, **options: hook.create_task_instances(rows, **options),
)
HISTORY_ROWS = RowKind(
    "task_instance_history", HISTORY, history_natural_key,
    lambda hook, dag_id, offset, limit: hook.get_task_instance_history(dag_id, limit=limit, offset=offset),
    lambda hook, dag_id: hook.iter_task_instance_history(dag_id, page_size=TARGET_TI_PAGE_RUNS),
    lambda hook, rows, **options: hook.create_task_instance_history(rows, **options),
)


def keys_of_runs(rows: Iterable[dict[str, Any]], natural_key: Callable[[dict[str, Any]], tuple],
                 runs: set[str]) -> set[tuple]:
    """The natural keys of the rows of ``runs``, for a set held while a DAG is copied or counted.

    Every row read brings its own copies of the DAG id, run id and task id strings; a key keeps
    the equal string met first instead (the run ids of ``runs`` themselves), so each string is
    held once, not once per row, and a key costs little more than its tuple."""
    strings: dict[str, str] = {run_id: run_id for run_id in runs}
    return {
        tuple(strings.setdefault(part, part) if type(part) is str else part for part in natural_key(row))
        for row in rows if row["run_id"] in runs
    }


class RunPager:
    """Where the next page of a run-paged read starts and how many runs it asks for.

    ``estimate``: ``(rows, runs)``, when the caller knows about how many rows so many runs hold
    (task instances, from the newest runs ``start`` read; retry history, from the task instances'
    try numbers): the first page is sized from that, but asks for no more than ``depth`` runs (the
    read's planned depth, when known) and FIRST_PAGE_RUNS more (runs tied in start dates move
    between pages), and no fewer than FIRST_PAGE_RUNS.
    """

    def __init__(self, estimate: tuple[int, int] | None = None, depth: int = 0) -> None:
        self.offset, self.limit = 0, FIRST_PAGE_RUNS
        if estimate is not None:
            rows, runs = estimate
            deep_enough = depth + FIRST_PAGE_RUNS if depth else MAX_PAGE_RUNS
            limit = min(self._runs_for_page(runs=max(runs, 1), rows=rows), MAX_PAGE_RUNS, deep_enough)
            self.limit = max(FIRST_PAGE_RUNS, limit)

    def advance(self, rows: int) -> None:
        """Move past the page just read, which held ``rows`` rows."""
        self.offset += self.limit
        wanted = self._runs_for_page(runs=self.limit, rows=rows)
        self.limit = max(1, min(wanted, self.limit * PAGE_GROWTH, MAX_PAGE_RUNS))

    @staticmethod
    def _runs_for_page(*, runs: int, rows: int) -> int:
        """How many runs hold about PAGE_ROWS rows, when ``runs`` runs held ``rows`` (none: the most)."""
        return runs * PAGE_ROWS // rows if rows else MAX_PAGE_RUNS


def classify_runs(runs: Iterable[dict[str, Any]], selection: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``("pending", position, run)`` for each unfinished run, ``("selected", position, run)`` for
    each finished run the selection (``since``, ``runs_limit``) keeps; positions count every run."""
    since = parse_datetime(selection["since"]) if selection.get("since") else None
    limit = int(selection.get("runs_limit") or 0)
    kept = 0
    for position, run in enumerate(runs):
        if run.get("state") not in FINISHED_RUN_STATES:
            yield "pending", position, run
            continue
        when = parse_datetime(run.get("logical_date") or run.get("execution_date") or run.get("run_after"))
        if since and (when is None or when < since):
            continue
        if limit and kept >= limit:
            continue
        kept += 1
        yield "selected", position, run


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


class HistoryOperator(MigrationOperator):
    """The history of a batch of DAGs, one after another: ``source_dags`` is one batch of
    DiscoverDagsOperator's list. Each DAG gets a summary of its own; the task pushes the list of
    them (XCom ``summary``) and fails at the end when any DAG had a failure, after doing the rest."""

    template_fields = (*MigrationOperator.template_fields, "source_dags", "runs_limit", "since")

    def __init__(self, *, source_dags: Any, runs_limit: Any = 0, since: Any = None, earlier: Iterable[str] = (),
                 later: Iterable[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", MAP_INDEX_TEMPLATE)
        super().__init__(**kwargs)
        self.source_dags = source_dags
        self.runs_limit = runs_limit
        self.since = since
        self.earlier = list(earlier)
        self.later = list(later)
        self.source_dag: dict[str, Any] = {}  # the DAG being copied
        self.plan: Any = None

    def execute(self, context: Any) -> Any:
        self.begin()
        summaries: list[dict[str, Any]] = []
        batch = list(self.source_dags or [])
        if batch:  # the versions ``start`` read: no version request here
            self.target_hook.known_version(batch[0].get("target_version"))
            self.source_hook.known_version(batch[0].get("source_version"))
        try:
            for position, spec in enumerate(batch):
                if not self.start_dag(spec):
                    continue
                self.last_summary = None
                try:
                    summary, error = self.summarized(context)
                finally:  # a DAG stopped by a kill or a timeout still shows what it did
                    if self.last_summary is not None:
                        summaries.append(self.last_summary)
                self.dag_done(summary, error)
                if error is None:
                    continue
                self.log.error("%s: %s failed", spec["dag_id"], self.resource, exc_info=error)
                if isinstance(error, BATCH_STOPPING_ERRORS) and position + 1 < len(batch):
                    # the same error awaits every other DAG: they are left for the next run
                    rest = [d["dag_id"] for d in batch[position + 1:]]
                    self.log.error("Stopping: %s not done (%s)", ", ".join(rest), type(error).__name__)
                    break
        finally:  # also when the task is killed or times out: the report shows what was done
            self.finish_batch(context, summaries)
        self.raise_if_failed(summaries)

    def start_dag(self, spec: dict[str, Any]) -> bool:
        """Make ``spec`` the DAG being copied; False: this task has nothing to do for it."""
        self.source_dag = spec
        return True

    def dag_done(self, summary: dict[str, Any], error: Exception | None) -> None:
        """After one DAG of the batch."""

    def finish_batch(self, context: Any, summaries: list[dict[str, Any]]) -> None:
        context["ti"].xcom_push(key="summary", value=summaries)

    @property
    def dag_to_migrate(self) -> str:
        return self.source_dag["dag_id"]

    def summary_dag_id(self) -> str | None:
        return self.source_dag.get("dag_id") if isinstance(self.source_dag, dict) else None

    def selection(self) -> dict[str, Any]:
        limit = int(self.runs_limit or 0)
        since = parse_datetime(self.since) if self.since not in (None, "") else None
        return {"runs_limit": limit, "since": since.isoformat() if since else None}

    @property
    def majors(self) -> tuple[int, int]:
        known = (self.plan or {}).get("source_major")  # the plan spares later tasks a version request
        return int(known or self.source_hook.airflow_major), self.target_hook.airflow_major

    def store_marker(self, summary: Summary, context: Any) -> None:
        """Store the DAG's sync marker if this is its last copy task to run and all of them went well.

        ``earlier``: task ids of the DAG's copy tasks before this one; ``later``: those after it.
        The last copy task that runs (the plan skips the others) stores the marker, when every copy
        task finished cleanly: a later sync then finds the DAG unchanged with one request."""
        plan = self.plan or {}
        if not plan.get("marker") or summary.dry_run or any(s.failed for s in (summary, *self.parts)):
            return
        if not all(plan_skipped(plan, task_id) for task_id in self.later):
            return  # a later copy task runs and stores it
        ti = context["ti"]
        for task_id in self.earlier:
            if plan_skipped(plan, task_id):  # dag_runs found nothing for it to do
                continue
            found = by_dag(ti.xcom_pull(task_ids=task_id, key="summary", map_indexes=ti.map_index)).get(
                self.dag_to_migrate)
            if found is None or failed_total(found):
                self.log.info("Not storing the sync marker: %s did not finish cleanly", task_id)
                return
        sync_state.write_marker(self.target_hook, self.dag_to_migrate, plan["marker"])

    def ti_page_estimate(self) -> tuple[int, int] | None:
        """``(rows, runs)`` for sizing the first page of the DAG's task instances: what ``start`` read
        off its newest runs (those the first page begins with), when it did."""
        per_run = self.source_dag.get("tasks_per_run") if isinstance(self.source_dag, dict) else None
        return (round(float(per_run) * PROBE_RUNS), PROBE_RUNS) if per_run else None

    def source_task_instances(self, dag_id: str, run_ids: set[str], plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Task instances of these runs, read by pages of runs until every run was seen. A page
        holds every row of its runs: a run met on an earlier page (pages overlap when start dates
        tie) is skipped whole, so only the runs not met yet are kept, not a key per row."""
        unseen, pager = set(run_ids), RunPager(self.ti_page_estimate(), int(plan.get("scan_runs") or 0))
        total = int(plan.get("source_total") or 0)
        while unseen and pager.offset < max(total, 1):
            page = self.source_hook.get_task_instances(dag_id, limit=pager.limit, offset=pager.offset)
            total = max(total, int(page.get("dag_run_count") or 0))
            rows = page.get("task_instances") or []
            page_keys: set[tuple] = set()
            for row in rows:
                if row["run_id"] in unseen:
                    key = ti_natural_key(row)
                    if key not in page_keys:
                        page_keys.add(key)
                        yield row
            unseen -= {key[1] for key in page_keys}
            pager.advance(len(rows))
            page = rows = page_keys = None

    def post(self, summary: Summary, rows: list[dict[str, Any]], what: RowKind = RUN_ROWS, *,
             hold_tail: bool = False) -> list[dict[str, Any]]:
        """Translate and write rows; count what went in and name what the target refused.

        ``hold_tail``: the rows of the last, partly filled request body are not written but
        returned, for the caller to send with its next rows (full bodies: fewer requests).
        """
        if not rows:
            return []
        if summary.dry_run:
            summary.created += len(rows)
            return []
        from starship_dags.hooks.batching import PostResult  # loaded with the hooks, by now

        source_major, target_major = self.majors
        translated = without_null_columns([translate(what.kind, row, source_major, target_major) for row in rows])
        hook = self.target_hook
        result: PostResult = what.write(hook, translated, hold_tail=hold_tail)
        held = rows[len(rows) - result.held:] if result.held else []
        summary.created += result.sent
        if result.uncertain:
            stored = {what.natural_key(row) for row in what.target_rows(hook, self.dag_to_migrate)}
            again = [row for row in result.uncertain if what.natural_key(row) not in stored]
            summary.created += len(result.uncertain) - len(again)
            self.log.info("%d of %d rows of the uncertain batch were stored by the lost attempt; writing %d",
                          len(result.uncertain) - len(again), len(result.uncertain), len(again))
            retried: PostResult = what.write(hook, again) if again else PostResult()
            summary.created += retried.sent
            result.failed.extend(retried.failed)
            for row in retried.uncertain:
                result.failed.append((f"{what.kind} {what.natural_key(row)!r}",
                                      "the target neither stored it nor accepted it"))
        for name, reason in result.failed:
            summary.add("failed", name, reason)
        return held


def by_dag(pushed: Any) -> dict[str, dict[str, Any]]:
    """Per DAG id, what the history tasks pushed: their summaries (a list per batch) or ``dag_runs``'
    batch plans (``{"plans": {dag_id: plan}}``), from one map index or a sequence of them (Airflow
    returns a lazy sequence, not a list, for several map indexes)."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(pushed, dict):
        if isinstance(pushed.get("plans"), dict):
            found.update({d: p for d, p in pushed["plans"].items() if isinstance(p, dict)})
        elif pushed.get("dag_id") is not None:
            found[pushed["dag_id"]] = pushed
    elif isinstance(pushed, Iterable) and not isinstance(pushed, (str, bytes)):
        for value in pushed:
            found.update(by_dag(value))
    return found


def _for_later_tasks(plan: dict[str, Any]) -> dict[str, Any]:
    """A DAG's plan without what only dag_runs itself reads: a batch's plans travel in one XCom."""
    return {k: v for k, v in plan.items() if k not in OWN_PLAN_KEYS}


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


def batch_specs(batches: Any) -> list[tuple[int, dict[str, Any]]]:
    """``(map index, DAG spec)`` for every DAG of DiscoverDagsOperator's list of batches."""
    return [(index, spec) for index, batch in enumerate(batches or []) for spec in batch or []]


def plan_skipped(plan: Any, task_id: str) -> bool:
    """True when the DAG's ``dag_runs`` task, by its ``plan``, skipped ``task_id`` as having nothing
    to do: such a task leaves no summary, and that is complete."""
    return isinstance(plan, dict) and task_id in (plan.get("skipped_tasks") or [])


class DagRunsMigrationOperator(HistoryOperator):
    """A DAG's runs, then the task instances and retry history of the runs that need them.

    The task instances and the retry history are parts of this task's summary (the report shows
    them as rows of their own): one task, one process start on the target's executor.

    :param artifacts: which of ``xcoms``/``task_logs`` the DAG's later tasks copy; part of the
        selection stored in the sync marker, so selecting one more re-examines every run once.
    :param children: task id -> whether it is meant to run, for each later task of the DAG (all
        direct downstream of this one). When this task succeeds, it skips those not meant to run,
        the ``artifact_children`` (XComs, logs) when no run needs them, and all of them when the
        DAG is unchanged, so the scheduler does not start a task only for it to find nothing to
        do. The plan names them (``skipped_tasks``). After a failure every later task runs.
    """

    resource = "dag_runs"
    template_fields = (*HistoryOperator.template_fields, "artifacts", "children")

    def __init__(self, *, artifacts: Any = (), children: dict[str, Any] | None = None,
                 artifact_children: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.artifacts = artifacts
        self.children = dict(children or {})
        self.artifact_children = frozenset(artifact_children)  # the XCom and log tasks among them

    def selection(self) -> dict[str, Any]:
        return {**super().selection(), "artifacts": sorted(as_name_list(self.artifacts))}

    def execute(self, context: Any) -> None:
        self.done_plans: dict[str, dict[str, Any]] = {}
        super().execute(context)  # fails when a DAG had a failure: then every later task runs
        skipped = self.pushed_plan["skipped_tasks"]
        if skipped:
            self.log.info("Nothing to do for %s; skipped", ", ".join(skipped))
        skip_downstream(context, skipped)  # on Airflow 3 this ends the task (successfully)

    def start_dag(self, spec: dict[str, Any]) -> bool:
        self.source_dag = spec
        self.plan = {"dag_id": spec["dag_id"], "idle": True, "run_ids": []}
        return True

    def dag_done(self, summary: dict[str, Any], error: Exception | None) -> None:
        if error is not None or failed_total(summary):
            # the later tasks copy the XComs and logs of the runs that went in, and count
            self.plan.pop("skipped_tasks", None)
        else:
            self.plan.setdefault("skipped_tasks", self.idle_children())
        self.done_plans[self.dag_to_migrate] = _for_later_tasks(self.plan)

    def batch_plan(self) -> dict[str, Any]:
        """Every DAG's plan, and the later tasks that have nothing to do for any DAG of the batch."""
        plans = dict(self.done_plans)
        current = self.source_dag.get("dag_id")
        if current is not None and current not in plans and self.plan:  # stopped inside a DAG (killed, timed out)
            plans[current] = _for_later_tasks({k: v for k, v in self.plan.items() if k != "skipped_tasks"})
        common = None
        for plan in plans.values():
            mine = set(plan.get("skipped_tasks") or [])
            common = mine if common is None else common & mine
        return {"plans": plans, "skipped_tasks": sorted(common or [])}

    def finish_batch(self, context: Any, summaries: list[dict[str, Any]]) -> None:
        super().finish_batch(context, summaries)
        self.pushed_plan = self.batch_plan()
        context["ti"].xcom_push(key="return_value", value=self.pushed_plan)

    def idle_children(self) -> list[str]:
        """The later tasks of this DAG that have nothing to do, by the plan just made."""
        idle = []
        for task_id, meant in self.children.items():
            if (not as_bool(meant) or self.plan.get("idle")
                    or (task_id in self.artifact_children and not self.plan.get("artifact_run_ids"))):
                idle.append(task_id)
        return sorted(idle)

    def migrate(self, summary: Summary, context: Any) -> None:
        dag_id = self.dag_to_migrate
        if self.source_dag.get("problem"):
            summary.add("failed", f"DAG {dag_id!r}", self.source_dag["problem"])
            return
        if self.copy_runs(summary):
            # after copy_runs returned: what it held per run (the comparison) is freed by now
            self.copy_children(summary, context)

    def copy_runs(self, summary: Summary) -> bool:
        """Compare the DAG's runs, write the missing finished ones and make the plan; False when the
        marker shows the DAG unchanged (nothing more to do)."""
        dag_id = self.dag_to_migrate
        source, target = self.source_hook, self.target_hook
        first = source.get_dag_runs(dag_id, limit=RUN_PAGE, offset=0)
        total = int(first.get("dag_run_count") or 0)
        source_url = source.url_from_endpoint("")
        digest = sync_state.page_digest(first.get("dag_runs") or [])
        selection = self.selection()
        marker = self.source_dag.get("marker")
        if sync_state.unchanged(marker, source_url=source_url, run_count=total, digest=digest, selection=selection):
            summary.unchanged = total - len(marker.get("pending", []))
            summary.notes.append("unchanged since the last sync")
            self.log.info("%s: unchanged since the last sync (%d runs); nothing to do", dag_id, total)
            return False
        if (marker or self.source_dag.get("marker_stored")) and not summary.dry_run:
            sync_state.delete_marker(target, dag_id)

        # Only what the comparison needs is kept per run, and new runs are written as they come,
        # so memory stays small however long the history is.
        target_ids: set[str] = set()
        target_by_date: dict[Any, str] = {}
        for run in RUN_ROWS.target_rows(target, dag_id):
            target_ids.add(run["run_id"])
            when = parse_datetime(run.get("logical_date") or run.get("execution_date"))
            if when is not None:
                target_by_date[when] = run["run_id"]

        # Per selected run: its id, and its position on the source (runs not selected count too).
        # An array and a list of the rows' own id strings, not a tuple per run: 16 bytes a run.
        selected: list[str] = []
        positions = array("l")
        pending: list[str] = []
        created = 0  # runs sent to the target (the ones it refused are named in the summary)
        clashes: set[str] = set()
        batch: list[dict[str, Any]] = []
        cutoff: tuple[Any, str] | None = None
        for kind, position, run in classify_runs(source.iter_dag_runs(dag_id, page_size=RUN_PAGE, first=first), selection):
            run_id = run["run_id"]
            if kind == "pending":
                summary.add("skipped", f"run {run_id!r}", f"{run.get('state')}: picked up by a later run")
                pending.append(run_id)
                continue
            selected.append(run_id)
            positions.append(position)
            ended = parse_datetime(run.get("end_date")) if run.get("end_date") else None
            if ended is not None and (cutoff is None or ended > cutoff[0]):
                cutoff = (ended, str(run["end_date"]))
            if run_id in target_ids:
                continue
            when = parse_datetime(run.get("logical_date") or run.get("execution_date"))
            other = target_by_date.get(when) if when is not None else None
            if other is not None and other != run_id:
                clashes.add(run_id)
                summary.add("failed", f"run {run_id!r}", f"its logical date {when.isoformat()} is taken on the target by run {other!r}")
                continue
            batch.append(run)
            created += 1
            if len(batch) >= WRITE_BATCH_RUNS:
                batch = self.post(summary, batch, hold_tail=True)
        self.post(summary, batch)
        summary.unchanged += len(selected) - created - len(clashes)
        refused = {f["item"] for f in summary.failures}
        # XComs and logs: runs written now or earlier pending, unless the marker does not prove that
        # the earlier runs got them (no marker, or a kind selected that the last sync did not copy).
        covered = set((marker or {}).get("selection", {}).get("artifacts") or [])
        artifacts_of_needed = marker is not None and covered >= set(selection["artifacts"])
        earlier_pending = set(marker.get("pending", [])) if marker is not None else set()
        needed: list[str] = []  # runs whose task instances and history are checked
        present: list[str] = []  # runs on the target now
        missing_runs: list[str] = []  # runs the target refused: the children name their rows
        deepest = -1  # the position of the last run the children need (positions only grow)
        for position, run_id in zip(positions, selected):
            if run_id not in target_ids and (run_id in clashes or f"run {run_id!r}" in refused):
                missing_runs.append(run_id)
                deepest = position
                continue
            present.append(run_id)
            # with no marker there is no proof of a complete earlier sync: every run is checked;
            # else the runs written now (those not on the target before) and those pending before
            if marker is None or run_id not in target_ids or run_id in earlier_pending:
                needed.append(run_id)
                deepest = position
        self.plan = {
            "dag_id": dag_id,
            "idle": False,
            "run_ids": needed,
            # of those, the runs that were on the target before this task: only their task instances
            # and history can be there already, so only they are looked up on the target
            "existing_run_ids": [run_id for run_id in needed if run_id in target_ids],
            "artifact_run_ids": (needed if artifacts_of_needed else present) if selection["artifacts"] else [],
            "refused_run_ids": missing_runs,
            # how deep the children read the source: everything when there is no marker, else
            # down to the deepest run that needs its children (they read on if one is missing)
            "scan_runs": total if marker is None else deepest + 1,
            "source_major": source.airflow_major,  # spares the children a version request
            "source_total": total,
            # the newest end date among the runs this copy selected: validation leaves out runs that
            # finished later (a live source goes on running while the copy is made)
            "source_cutoff": cutoff[1] if cutoff else None,
            "marker": sync_state.make_marker(
                source_url=source_url, run_count=total, digest=digest, pending=pending, selection=selection
            ),
        }
        self.plan["skipped_tasks"] = self.idle_children()  # dropped again if this task fails
        self.log.info(
            "%s: %d runs on the source, %d on the target; %d written, %d skipped as unfinished; "
            "task instances to check for %d runs",
            dag_id, total, len(target_ids), created, len(pending), len(needed),
        )
        return True

    def copy_children(self, summary: Summary, context: Any) -> None:
        """The task instances, then the retry history, of the runs the plan names."""
        plan, dag_id = self.plan, self.dag_to_migrate
        needed = set(plan["run_ids"])
        refused = set(plan["refused_run_ids"])
        retried: set[str] = set()  # runs with a task instance past its first try: only they have history
        tries_read = None  # (earlier tries of the task instances read, runs read): about as many history rows
        with self.part(TI_ROWS.resource) as part:
            if needed or refused:
                tries_read = self.copy_missing(part, TI_ROWS, dag_id, needed, needed, plan, refused, retried,
                                               estimate=self.ti_page_estimate())
        with self.part(HISTORY_ROWS.resource) as part:  # after the task instances: Airflow ties it to them
            if needed or refused:
                self.copy_missing(part, HISTORY_ROWS, dag_id, needed, retried & needed, plan, refused,
                                  estimate=tries_read)
        if self.parts[-1].created and not summary.dry_run and self.target_hook.airflow_major >= 3:
            self._fill_dag_versions(dag_id)
        self.store_marker(summary, context)

    def copy_missing(
        self, summary: Summary, what: RowKind, dag_id: str, needed: set[str], expected: set[str],
        plan: dict[str, Any], refused: set[str] = frozenset(), retried: set[str] | None = None,
        estimate: tuple[int, int] | None = None,
    ) -> tuple[int, int]:
        """Write the rows of the ``needed`` runs that the target lacks, reading the source's pages to
        the plan's depth and on while a run of ``expected`` (those sure to have rows) has not shown
        up. ``retried`` collects the runs with a task instance past its first try. ``estimate``,
        about how many rows how many runs hold, sizes the first page. Rows are written in full
        request bodies: the last, partly filled one of a page waits for the next page's rows.

        Returns the earlier tries of every row read (past its first) and the runs read: about
        as many retry-history rows are in those runs."""
        # Runs that dag_runs wrote just now cannot have rows on the target yet: only the others are read there.
        maybe_there = needed & set(plan["existing_run_ids"]) if "existing_run_ids" in plan else needed
        on_target = (keys_of_runs(what.target_rows(self.target_hook, dag_id), what.natural_key, maybe_there)
                     if maybe_there else set())
        # A page holds every row of its runs; a run met on an earlier page (ties in start dates move
        # runs between pages) is skipped whole: a run leaves ``open_runs`` with the page it is met
        # on. A set that only shrinks, of the plan's own run id strings, keeps memory small.
        open_runs = needed | refused
        without_run: dict[str, int] = {}
        unseen = len(expected)  # runs of ``expected`` not met yet
        depth, total = int(plan.get("scan_runs") or 0), int(plan.get("source_total") or 0)
        pager = RunPager(estimate, depth)
        earlier_tries = 0
        held: list[dict[str, Any]] = []  # rows read but not written yet (the last body of a page)
        # Read down to the planned depth, and further while a needed run has not shown up yet
        # (ties in start dates can move runs between pages), but never past the last run.
        while pager.offset < depth or (unseen and pager.offset < total):
            page = what.source_page(self.source_hook, dag_id, pager.offset, pager.limit)
            if pager.offset == 0:  # runs that started since the plan push the ones we need further down
                total = max(total, int(page.get("dag_run_count") or 0))
                depth += max(0, total - int(plan.get("source_total") or 0))
            missing = []
            page_keys: set[tuple] = set()
            page_runs: set[str] = set()
            rows = page.get("task_instances") or []
            for row in rows:
                run_id = row["run_id"]
                tries = int(row.get("try_number") or 0)
                earlier_tries += max(tries - 1, 0)
                if run_id not in open_runs:  # not wanted, or met on an earlier page
                    continue
                key = what.natural_key(row)
                if key in page_keys:
                    continue
                page_keys.add(key)
                page_runs.add(run_id)
                if run_id in refused:
                    without_run[run_id] = without_run.get(run_id, 0) + 1
                    continue
                if retried is not None and tries > 1:
                    retried.add(run_id)
                if key in on_target:
                    summary.unchanged += 1
                else:
                    missing.append(row)
            open_runs -= page_runs
            unseen -= sum(1 for run_id in page_runs if run_id in expected)
            held = self.post(summary, held + missing, what, hold_tail=True)
            pager.advance(len(rows))
            self.log.info("%s %s: read %d of %d runs (planned depth %d); %d written so far", dag_id,
                          what.resource, min(pager.offset, total), total, depth, summary.created)
            # let this page go before the next one is read (``held`` keeps the rows still to send):
            # two pages alive at once would double the peak
            page = rows = missing = None
        self.post(summary, held, what)
        for run_id, count in sorted(without_run.items()):
            summary.add("skipped", f"{count} row(s) of run {run_id!r}",
                        "the run is not on the target (see the dag_runs failures)", count=count)
        return earlier_tries, min(pager.offset, max(total, 1))

    def _fill_dag_versions(self, dag_id: str) -> None:
        """Airflow 3's Starship fills missing DAG versions after each task-instance POST, but history
        posted afterwards stays without one: re-send one existing task instance (a no-op insert)."""
        page = self.target_hook.get_task_instances(dag_id, limit=1, offset=0)
        rows = page.get("task_instances") or []
        if rows:
            self.target_hook.create_task_instances([translate(TASK_INSTANCE, rows[0], 3, 3)])


class PlannedOperator(HistoryOperator):
    """A history task after ``dag_runs``, working from its plans (``plans``: that task's return value,
    every DAG's plan by DAG id). A DAG whose plan skips this task is left out (it has no summary).

    Runs even when an upstream task of the batch failed: a refused run must not keep the other
    runs' XComs or logs out, and counts are most useful after a failure.
    """

    template_fields = (*HistoryOperator.template_fields, "plans")

    def __init__(self, *, plans: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plans = plans

    @cached_property
    def plans_by_dag(self) -> dict[str, dict[str, Any]]:
        return by_dag(self.plans)  # read once the template is rendered, at the first DAG

    def start_dag(self, spec: dict[str, Any]) -> bool:
        self.source_dag = spec
        self.plan = self.plans_by_dag.get(spec["dag_id"])  # None: dag_runs did not get to this DAG
        if plan_skipped(self.plan, self.task_id):
            self.log.info("%s: nothing to do", spec["dag_id"])
            return False
        return True


__all__ = [
    "HISTORY_ROWS",
    "HISTORY_TASKS",
    "batch_specs",
    "deal",
    "runs_to_copy",
    "by_dag",
    "RUN_ROWS",
    "TI_ROWS",
    "DagRunsMigrationOperator",
    "PlannedOperator",
    "classify_runs",
    "keys_of_runs",
    "plan_skipped",
    "DiscoverDagsOperator",
]
