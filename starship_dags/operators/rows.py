"""History rows (DAG runs, task instances, retry history): reading them, and writing what the target lacks.

Rows are identified by natural keys only: a run by ``(dag_id, run_id)``, a task instance by
``(dag_id, run_id, task_id, map_index)``, a history row by that and ``try_number``. :func:`write`
translates source rows for the target (:mod:`starship_dags.translate`), writes them in byte-bounded
bodies, counts what went in and names what the target refused. A write whose answer was lost and
whose retry met 409 is checked against the target, so nothing is doubled or wrongly failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from starship_dags.hooks.paging import RunPager, run_pages
from starship_dags.report import Summary
from starship_dags.translate import (
    DAG_RUN,
    HISTORY,
    TASK_INSTANCE,
    history_natural_key,
    ti_natural_key,
    translate,
    without_null_columns,
)

if TYPE_CHECKING:
    from starship_dags.hooks.batching import PostResult
    from starship_dags.hooks.starship import StarshipHook

RUN_PAGE = 500  # runs per GET of dag_runs
TARGET_TI_PAGE_RUNS = 500  # runs per GET of the target's task instances or history
WRITE_BATCH_RUNS = 2000  # new runs are written every this many (the hook splits by bytes)
#: The summary's resource for each kind of row.
RESOURCES = {DAG_RUN: "dag_runs", TASK_INSTANCE: "task_instances", HISTORY: "task_instance_history"}


def natural_key(kind: str, row: dict[str, Any]) -> Any:
    if kind == DAG_RUN:
        return row["run_id"]
    return ti_natural_key(row) if kind == TASK_INSTANCE else history_natural_key(row)


def target_rows(hook: StarshipHook, kind: str, dag_id: str) -> Iterator[dict[str, Any]]:
    """Every row of this kind the target has for the DAG."""
    if kind == DAG_RUN:
        return hook.iter_dag_runs(dag_id, page_size=RUN_PAGE)
    if kind == TASK_INSTANCE:
        return hook.iter_task_instances(dag_id, page_size=TARGET_TI_PAGE_RUNS)
    return hook.iter_task_instance_history(dag_id, page_size=TARGET_TI_PAGE_RUNS)


def source_page(hook: StarshipHook, kind: str, dag_id: str, *, limit: int, offset: int) -> dict[str, Any]:
    """One page of the source's task instances or history: the rows of ``limit`` runs at ``offset``."""
    if kind == TASK_INSTANCE:
        return hook.get_task_instances(dag_id, limit=limit, offset=offset)
    return hook.get_task_instance_history(dag_id, limit=limit, offset=offset)


def create(hook: StarshipHook, kind: str, rows: list[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
    if kind == DAG_RUN:
        return hook.create_dag_runs(rows, hold_tail=hold_tail)
    if kind == TASK_INSTANCE:
        return hook.create_task_instances(rows, hold_tail=hold_tail)
    return hook.create_task_instance_history(rows, hold_tail=hold_tail)


def keys_of_runs(rows: Iterable[dict[str, Any]], kind: str, runs: set[str]) -> set[tuple]:
    """The natural keys of the rows of ``runs``, for a set held while a DAG is copied or counted.

    Every row read brings its own copies of the DAG id, run id and task id strings; a key keeps
    the equal string met first instead (the run ids of ``runs`` themselves), so each string is
    held once, not once per row, and a key costs little more than its tuple."""
    strings: dict[str, str] = {run_id: run_id for run_id in runs}
    return {
        tuple(strings.setdefault(part, part) if type(part) is str else part for part in natural_key(kind, row))
        for row in rows if row["run_id"] in runs
    }


def source_task_instances(hook: StarshipHook, dag_id: str, run_ids: set[str], *, estimate: tuple[int, int] | None,
                          depth: int, total: int) -> Iterator[dict[str, Any]]:
    """The source's task instances of these runs, read by pages of runs until every run was seen
    (``depth``, ``total``: the plan's; ``estimate`` sizes the first page, see RunPager)."""
    unseen = set(run_ids)
    if not unseen:
        return
    for page in run_pages(hook.get_task_instances, dag_id, "task_instances", ti_natural_key, RunPager(estimate, depth),
                          wanted=unseen, more=lambda offset, seen_total: bool(unseen) and offset < max(seen_total, total, 1)):
        unseen -= page.runs
        yield from page.rows


def write(op: Any, summary: Summary, kind: str, rows: list[dict[str, Any]], *,
          hold_tail: bool = False) -> list[dict[str, Any]]:
    """Translate and write rows of ``op``'s current DAG (``op``: a history task, with the two hooks);
    count what went in and name what the target refused.

    ``hold_tail``: the rows of the last, partly filled request body are not written but returned,
    for the caller to send with its next rows (full bodies: fewer requests).
    """
    if not rows:
        return []
    if summary.dry_run:
        summary.created += len(rows)
        return []
    from starship_dags.hooks.batching import PostResult  # loaded with the hooks, by now

    source_major, target_major = op.majors
    translated = without_null_columns([translate(kind, row, source_major, target_major) for row in rows])
    hook = op.target_hook
    result = create(hook, kind, translated, hold_tail=hold_tail)
    held = rows[len(rows) - result.held:] if result.held else []
    summary.created += result.sent
    if result.uncertain:
        stored = {natural_key(kind, row) for row in target_rows(hook, kind, op.dag_to_migrate)}
        again = [row for row in result.uncertain if natural_key(kind, row) not in stored]
        summary.created += len(result.uncertain) - len(again)
        op.log.info("%d of %d rows of the uncertain batch were stored by the lost attempt; writing %d",
                    len(result.uncertain) - len(again), len(result.uncertain), len(again))
        retried = create(hook, kind, again) if again else PostResult()
        summary.created += retried.sent
        result.failed.extend(retried.failed)
        for row in retried.uncertain:
            result.failed.append((f"{kind} {natural_key(kind, row)!r}", "the target neither stored it nor accepted it"))
    for name, reason in result.failed:
        summary.add("failed", name, reason)
    return held
