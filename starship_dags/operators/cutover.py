"""Cutover: stop the DAGs on the source, copy their last runs, start them on the target.

1. :class:`CutoverPauseOperator` (before the history is copied) records each selected DAG's pause
   state on the target and pauses each DAG on the source at a moment none of its runs is queued
   or running there (a paused DAG's unfinished runs stand still, so it waits first and pauses
   then). If a DAG finds no such moment before the timeout, the task unpauses what it paused
   and fails: the source goes on as before.
2. The history tasks then make the final incremental sync, and validation counts it.
3. :class:`CutoverUnpauseOperator` unpauses each DAG on the target, but only once the target's
   scheduler has taken the migrated runs into account: its next run must lie after the last
   migrated scheduled run. Until the target re-parses the DAG file it may still point at an
   older interval, and unpausing then lets the scheduler create runs for intervals that already
   ran on the source (Starship issue #112). The target is asked to re-parse the file at once.
   DAGs that were paused on the source before the cutover stay paused on the target when
   ``mirror_paused`` is set.

The recorded pause states live on the target as variables ``starship_dags.cutover.<dag_id>``, so a
rerun (after a failure, or of a finished cutover) still knows which DAGs were paused before the
cutover began, and never takes the pause it made itself for the DAG's own state. They are kept
after the cutover, and deleted only when a cutover is called off (the source then runs as before).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starship_dags.compat import AirflowException
from starship_dags.operators.base import MigrationOperator, as_bool, as_name_list
from starship_dags.operators.rows import RUN_PAGE
from starship_dags.operators.start import MIGRATION_DAG_IDS
from starship_dags.plan import batch_specs, plans_by_dag
from starship_dags.report import Summary, failed_total, summaries_by_dag
from starship_dags.sync_state import INTERNAL_PREFIX, read_json_variables
from starship_dags.translate import parse_datetime

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

RESOURCE = "cutover"
RECORD_PREFIX = INTERNAL_PREFIX + "cutover."
ACTIVE_STATES = frozenset({"queued", "running"})
ACTIVE_PAGE = 100  # newest runs examined per DAG (queued runs sort first, running ones next)
AUTOMATED_RUN_TYPES = frozenset({"scheduled", "backfill"})
POLL_SECONDS = 10


def _record_key(dag_id: str) -> str:
    return RECORD_PREFIX + dag_id


def read_records(target: StarshipHook) -> dict[str, bool]:
    """DAG id -> whether it was paused on the source before its cutover began."""
    return {
        dag_id: bool(value["was_paused"]) for dag_id, value in read_json_variables(target, RECORD_PREFIX).items()
        if isinstance(value, dict) and "was_paused" in value
    }


class _CutoverOperator(MigrationOperator):
    resource = RESOURCE
    template_fields = (*MigrationOperator.template_fields, "timeout_minutes")

    def __init__(self, *, timeout_minutes: Any = 30, poll_seconds: float = POLL_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_minutes = timeout_minutes
        self.poll_seconds = poll_seconds

    def deadline(self) -> float:
        minutes = float(self.timeout_minutes or 0)
        if minutes <= 0:
            raise ValueError(f"the cutover timeout must be a positive number of minutes; got {self.timeout_minutes!r}")
        return time.monotonic() + minutes * 60

    def execute(self, context: Any) -> Any:
        if not as_bool(self.enabled):  # not a skip: the tasks after this one must still run
            self.log.info("Cutover not selected for this run")
            return {"dags": {}}
        return super().execute(context)


class CutoverPauseOperator(_CutoverOperator):
    """Pause the selected DAGs on the source, each at a moment none of its runs is queued or running.

    :param dag_ids: the DAGs to cut over; empty means every DAG of the source except this package's.
    :param history_enabled: whether DAG history is selected (a cutover without it is refused).
    """

    template_fields = (*_CutoverOperator.template_fields, "dag_ids", "history_enabled")

    def __init__(self, *, dag_ids: Any = None, history_enabled: Any = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dag_ids = dag_ids
        self.history_enabled = history_enabled

    def execute(self, context: Any) -> Any:
        self.result: dict[str, Any] = {"dags": {}}
        super().execute(context)
        return self.result

    def migrate(self, summary: Summary, context: Any) -> None:
        if not as_bool(self.history_enabled):
            raise AirflowException("cutover needs 'dag_history' among the resources: the last runs must be copied")
        deadline = self.deadline()
        source, target = self.source_hook, self.target_hook
        on_source = {d["dag_id"]: bool(d.get("is_paused")) for d in source.get_dags()}
        wanted = as_name_list(self.dag_ids)
        for dag_id in wanted:
            if dag_id not in on_source:
                summary.add("failed", f"DAG {dag_id!r}", "not on the source")
        dag_ids = sorted((set(wanted) & set(on_source)) if wanted else set(on_source))
        dag_ids = [d for d in dag_ids if d not in MIGRATION_DAG_IDS and d != context["dag"].dag_id]
        recorded = read_records(target)
        states = {}
        for dag_id in dag_ids:
            # A rerun keeps the state recorded before this package paused the DAG.
            states[dag_id] = recorded.get(dag_id, on_source[dag_id])
            if summary.dry_run:
                summary.add("unchanged" if on_source[dag_id] else "updated", f"DAG {dag_id!r}")
                continue
            if dag_id not in recorded:
                target.create_variable({
                    "key": _record_key(dag_id),
                    "val": json.dumps({"was_paused": on_source[dag_id]}),
                    "description": "starship_dags cutover: pause state on the source before the cutover",
                })
            if on_source[dag_id]:
                summary.add("unchanged", f"DAG {dag_id!r}")
        self.result = {"dags": states}
        if summary.dry_run or not dag_ids:
            summary.notes.append(f"{len(dag_ids)} DAG(s) to pause on the source" + (" (dry run)" if summary.dry_run else ""))
            return
        self._pause_when_quiet(summary, [d for d in dag_ids if not on_source[d]], states, deadline)

    def _active_runs(self, dag_id: str) -> list[str]:
        page = self.source_hook.get_dag_runs(dag_id, limit=ACTIVE_PAGE, offset=0)
        return [r["run_id"] for r in page.get("dag_runs") or [] if r.get("state") in ACTIVE_STATES]

    def _pause_when_quiet(self, summary: Summary, dag_ids: list[str], states: dict[str, bool], deadline: float) -> None:
        """Pause each DAG at a moment none of its runs is queued or running.

        A paused DAG's unfinished runs stand still (the scheduler leaves them alone), so pausing
        first and waiting afterwards would wait forever. If a run slips in just before the pause
        takes effect, the DAG is unpaused again to let it finish, and paused at the next quiet moment.
        """
        source = self.source_hook
        waiting = list(dag_ids)
        while True:
            busy: dict[str, list[str]] = {}
            for dag_id in list(waiting):
                active = self._active_runs(dag_id)
                if not active:
                    source.set_dag_paused(dag_id, True)
                    active = self._active_runs(dag_id)
                    if not active:
                        waiting.remove(dag_id)
                        summary.add("updated", f"DAG {dag_id!r}")
                        continue
                    source.set_dag_paused(dag_id, False)
                busy[dag_id] = active
            if not waiting:
                summary.notes.append(f"{len(states)} DAG(s) paused on the source, none with a queued or running run")
                return
            listing = "; ".join(f"{d}: {', '.join(r[:3])}{' …' if len(r) > 3 else ''}" for d, r in busy.items())
            if time.monotonic() >= deadline:
                for dag_id in states:  # the cutover is called off: the source goes on as before
                    if not states[dag_id] and dag_id not in waiting:
                        source.set_dag_paused(dag_id, False)
                    self.target_hook.delete_variable(_record_key(dag_id))
                summary.add(
                    "failed", "cutover",
                    f"runs still queued or running on the source after {self.timeout_minutes} min ({listing}); "
                    "the DAGs this task paused were unpaused again",
                )
                return
            self.log.info("Waiting for %d run(s) to finish on the source before pausing: %s",
                          sum(len(r) for r in busy.values()), listing)
            time.sleep(self.poll_seconds)


def last_automated_run(target: StarshipHook, dag_id: str) -> datetime | None:
    """The latest logical date among the target's scheduled and backfill runs of a DAG."""
    page = target.get_dag_runs(dag_id, limit=RUN_PAGE, offset=0)
    dates = [
        parse_datetime(r.get("logical_date") or r.get("execution_date"))
        for r in page.get("dag_runs") or []
        if str(r.get("run_type")) in AUTOMATED_RUN_TYPES
    ]
    dates = [d for d in dates if d is not None]
    return max(dates) if dates else None


def next_run(dag: dict[str, Any]) -> datetime | None:
    """The logical date of the scheduler's next run of a DAG, from the REST API (Airflow 2 or 3)."""
    return parse_datetime(dag.get("next_dagrun_logical_date") or dag.get("next_dagrun"))


class CutoverUnpauseOperator(_CutoverOperator):
    """Unpause the cut-over DAGs on the target once their next run lies after the migrated runs.

    :param pause_task_id: the :class:`CutoverPauseOperator` task, whose return value lists the DAGs.
    :param mirror_paused: leave DAGs paused on the target that were paused on the source before.
    """

    template_fields = (*_CutoverOperator.template_fields, "mirror_paused", "settings_checks", "dag_checks")

    def __init__(self, *, pause_task_id: str, discover_task_id: str, mirror_paused: Any = True,
                 settings_checks: dict[str, Any] | None = None, dag_checks: dict[str, Any] | None = None,
                 planned_by: dict[str, str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")  # decides per DAG from the summaries
        super().__init__(**kwargs)
        self.pause_task_id = pause_task_id
        self.discover_task_id = discover_task_id
        self.mirror_paused = mirror_paused
        self.settings_checks = settings_checks or {}  # task id -> whether it was meant to run
        self.dag_checks = dag_checks or {}  # mapped task id (one per batch of DAGs) -> whether it was meant to run
        self.planned_by = planned_by or {}  # mapped task id -> the task that may skip it (nothing to do)

    def incomplete(self, context: Any) -> dict[str, str]:
        """DAG id (``*``: all) -> which task did not finish cleanly for it."""
        ti = context["ti"]
        problems = {}
        for task_id, enabled in self.settings_checks.items():
            found = ti.xcom_pull(task_ids=task_id, key="summary") if as_bool(enabled) else {}
            if not isinstance(found, dict) or failed_total(found):
                problems["*"] = f"{task_id} did not finish cleanly"
        pulled: dict[tuple[str, str, int], dict[str, Any]] = {}

        def of_batch(task_id: str, key: str, index: int) -> dict[str, Any]:
            """Per DAG id, what a history task pushed for one batch: its summaries, or (dag_runs'
            return value) its plans."""
            if (task_id, key, index) not in pulled:
                pushed = ti.xcom_pull(task_ids=task_id, key=key, map_indexes=index)
                pulled[task_id, key, index] = plans_by_dag(pushed) if key == "return_value" else summaries_by_dag(pushed)
            return pulled[task_id, key, index]

        for index, spec in batch_specs(ti.xcom_pull(task_ids=self.discover_task_id)):
            dag_id = spec["dag_id"]
            problems.setdefault(dag_id, "")
            for task_id, enabled in self.dag_checks.items():
                found = of_batch(task_id, "summary", index).get(dag_id) if as_bool(enabled) else {}
                plan = of_batch(self.planned_by[task_id], "return_value", index).get(dag_id) \
                    if task_id in self.planned_by else None
                if found is None and plan is not None and plan.skips(task_id):
                    continue  # nothing to do for it: the DAG's history was complete already
                if not isinstance(found, dict) or failed_total(found):
                    problems[dag_id] = f"{task_id} did not finish cleanly"
                    break
        return problems

    def migrate(self, summary: Summary, context: Any) -> None:
        paused = (context["ti"].xcom_pull(task_ids=self.pause_task_id) or {}).get("dags") or {}
        if not paused:
            summary.notes.append("no DAG was paused on the source; nothing to unpause")
            return
        deadline = self.deadline()
        target = self.target_hook
        problems = self.incomplete(context)
        waiting: dict[str, datetime | None] = {}
        for dag_id, was_paused in sorted(paused.items()):
            if summary.dry_run:
                summary.notes.append(f"{dag_id}: would be {'left paused' if was_paused and as_bool(self.mirror_paused) else 'unpaused'}")
                continue
            problem = problems.get("*") or problems.get(dag_id, "its history was not migrated in this run")
            if problem:
                summary.add("failed", f"DAG {dag_id!r}", f"left paused on the target and the source: {problem}; "
                            "fix that and run the cutover again")
                continue
            dag = target.rest_dag(dag_id)
            if dag is None:
                summary.add("failed", f"DAG {dag_id!r}", "not on the target: deploy its file there, then run the cutover again")
                continue
            if was_paused and as_bool(self.mirror_paused):
                if not dag.get("is_paused"):
                    target.set_dag_paused(dag_id, True)
                summary.add("unchanged", f"DAG {dag_id!r}")
                summary.notes.append(f"{dag_id}: left paused (it was paused on the source before the cutover)")
                continue
            waiting[dag_id] = last_automated_run(target, dag_id)
            if dag.get("file_token"):
                target.rest_reparse(dag["file_token"])
        self._unpause_when_ready(summary, waiting, deadline)

    def _unpause_when_ready(self, summary: Summary, waiting: dict[str, datetime | None], deadline: float) -> None:
        target = self.target_hook
        while waiting:
            for dag_id, last in sorted(waiting.items()):
                nxt = next_run(target.rest_dag(dag_id) or {})
                if last is not None and nxt is not None and nxt <= last:
                    continue  # the target's scheduler has not seen the migrated runs yet
                target.set_dag_paused(dag_id, False)
                del waiting[dag_id]
                summary.add("updated", f"DAG {dag_id!r}")
                summary.notes.append(
                    f"{dag_id}: unpaused on the target; last migrated scheduled run "
                    f"{last.isoformat() if last else 'none'}, next run {nxt.isoformat() if nxt else 'none scheduled'}"
                )
            if not waiting:
                return
            if time.monotonic() >= deadline:
                for dag_id, last in sorted(waiting.items()):
                    summary.add(
                        "failed", f"DAG {dag_id!r}",
                        f"left paused: after {self.timeout_minutes} min the target's next run is still not after the "
                        f"last migrated run ({last.isoformat()}); check that the target parses the DAG file, then unpause it",
                    )
                return
            self.log.info("Waiting for the target to re-parse %d DAG(s) before unpausing: %s",
                          len(waiting), ", ".join(sorted(waiting)))
            time.sleep(self.poll_seconds)


__all__ = ["CutoverPauseOperator", "CutoverUnpauseOperator", "last_automated_run", "next_run", "read_records"]
