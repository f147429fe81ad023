"""Validation: after the copy, count what the source holds and what of it the target holds.

Counts are taken independently of the copying tasks' own bookkeeping: both sides are read again.
A count that differs is a failure of the ``validation`` resource, so the report fails; the missing
items are named (the first few). A DAG whose runs task found it unchanged since the last complete
sync is not recounted, which keeps an idle scheduled sync cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starship_dags import sync_state
from starship_dags.compat import AirflowSkipException
from starship_dags.operators.base import MigrationOperator, as_name_list
from starship_dags.operators.guard import stood_aside
from starship_dags.operators.batch import PlannedOperator, classify_runs
from starship_dags.operators.rows import RUN_PAGE, TARGET_TI_PAGE_RUNS, keys_of_runs, source_task_instances
from starship_dags.report import Summary
from starship_dags.translate import TASK_INSTANCE, parse_datetime, ti_natural_key

RESOURCE = "validation"
SHOWN_MISSING = 5  # missing items named per failed count


def compare_counts(summary: Summary, what: str, source_keys: Iterable[Any], target_keys: Iterable[Any]) -> bool:
    """One check: every source key must be on the target. Notes the counts, names what is missing.

    The target's keys are streamed against the source's, not collected: only the source's set and
    the shrinking set of those not met yet are held."""
    wanted = source_keys if isinstance(source_keys, (set, frozenset)) else set(source_keys)
    not_met = set(wanted)
    for key in target_keys:
        not_met.discard(key)
    present = len(wanted) - len(not_met)
    summary.notes.append(f"{what}: source {len(wanted)}, target {present}")
    if not not_met:
        summary.add("unchanged", what)
        return True
    missing = sorted(not_met, key=str)
    shown = ", ".join(_show(k) for k in missing[:SHOWN_MISSING])
    more = f" and {len(missing) - SHOWN_MISSING} more" if len(missing) > SHOWN_MISSING else ""
    summary.add("failed", what, f"source {len(wanted)}, target {present}; missing: {shown}{more}")
    return False


def _show(key: Any) -> str:
    if isinstance(key, tuple):  # (dag_id, run_id, task_id, map_index)
        _, run_id, task_id, map_index = key[:4]
        return f"{run_id}/{task_id}" + (f"[{map_index}]" if map_index not in (-1, None) else "")
    return repr(key)


def skip_if_stood_aside(task: Any, context: Any) -> None:
    """Validation runs after failures too (they are what counts reveal), not in a run that stood aside."""
    reason = stood_aside(task, context)
    if reason:
        raise AirflowSkipException(reason)


class SettingsValidationOperator(MigrationOperator):
    """Pools, variables and connections: the selected source keys, and how many of them the target has.

    :param selected_resources: the selected resources (only the keyed ones are counted).
    :param names: resource -> the names selected for it (empty: all).
    """

    resource = RESOURCE
    template_fields = (*MigrationOperator.template_fields, "selected_resources", "names")

    def __init__(self, *, keyed: dict[str, Any], selected_resources: Any, names: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")  # counts are most useful after a failure
        super().__init__(**kwargs)
        self.keyed = keyed  # resource -> its KeyedResourceOperator class
        self.selected_resources = selected_resources
        self.names = names

    def execute(self, context: Any) -> Any:
        skip_if_stood_aside(self, context)
        return super().execute(context)

    def migrate(self, summary: Summary, context: Any) -> None:
        selected = [r for r in as_name_list(self.selected_resources) if r in self.keyed]
        for resource in selected:
            operator = self.keyed[resource]
            source = {item[operator.key_field] for item in operator.list_items(self.source_hook)}
            wanted = as_name_list((self.names or {}).get(resource)) or sorted(source)
            target = {item[operator.key_field] for item in operator.list_items(self.target_hook)}
            # Names not on the source were reported by the copying task; count what the source has.
            compare_counts(summary, resource, [k for k in wanted if k in source], target)


class HistoryValidationOperator(PlannedOperator):
    """One DAG: its selected finished runs, and their task instances, on both sides."""

    resource = RESOURCE

    def execute(self, context: Any) -> Any:
        skip_if_stood_aside(self, context)
        return super().execute(context)

    def migrate(self, summary: Summary, context: Any) -> None:
        dag_id = self.dag_to_migrate
        if self.source_dag.get("problem"):
            summary.add("skipped", f"DAG {dag_id!r}", "not migrated (see dag_runs)")
            return
        if self.plan is not None and self.plan.idle:
            summary.notes.append("unchanged since the last complete sync; not recounted")
            return
        source, target = self.source_hook, self.target_hook
        newer: list[str] = []
        wanted = {
            run["run_id"] for kind, _, run in classify_runs(
                self._as_copied(source.iter_dag_runs(dag_id, page_size=RUN_PAGE), newer), self.selection())
            if kind == "selected"
        }
        if newer:
            summary.notes.append(f"{len(newer)} run(s) finished after the copy read the source; the next run copies them")
        runs_ok = compare_counts(summary, "runs", wanted, (r["run_id"] for r in target.iter_dag_runs(dag_id, page_size=RUN_PAGE)))
        plan = self.plan
        source_tis = keys_of_runs(source_task_instances(source, dag_id, wanted, estimate=self.ti_page_estimate(),
                                                        depth=plan.scan_runs if plan else 0,
                                                        total=plan.source_total if plan else 0), TASK_INSTANCE, wanted)
        target_tis = (ti_natural_key(r) for r in target.iter_task_instances(dag_id, page_size=TARGET_TI_PAGE_RUNS)
                      if r["run_id"] in wanted)
        tis_ok = compare_counts(summary, "task instances", source_tis, target_tis)
        if not (runs_ok and tis_ok) and not summary.dry_run:
            sync_state.delete_marker(target, dag_id)  # the next run compares everything again
            self.log.info("%s: counts differ; the sync marker is removed so the next run compares all runs", dag_id)

    def _as_copied(self, runs: Iterable[dict[str, Any]], newer: list[str]) -> Iterator[dict[str, Any]]:
        """The source's runs minus those that finished after the copy read it (they go in ``newer``)."""
        if self.plan is None or self.plan.idle:  # no plan made (dag_runs did not get to the DAG): no cutoff known
            yield from runs
            return
        cutoff = parse_datetime(self.plan.source_cutoff) if self.plan.source_cutoff else None
        for run in runs:
            ended = parse_datetime(run.get("end_date")) if run.get("end_date") else None
            if ended is not None and (cutoff is None or ended > cutoff):
                newer.append(run["run_id"])
                continue
            yield run


__all__ = ["HistoryValidationOperator", "SettingsValidationOperator", "compare_counts"]
