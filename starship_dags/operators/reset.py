"""Start over for some DAGs: delete their history from the **target** only, so the next migration
copies it whole.

Per DAG: every run (Starship deletes a DAG's runs at once, and with them the task instances, the
retry history, the XComs and the notes), the log files of its task instances, and its sync marker.
Never the source: this operator does not write through the source connection at all.

It refuses, before deleting anything:

* without the DAG ids typed twice (``confirm_dag_ids`` equal to ``dag_ids``);
* a DAG that is unpaused on the target and has runs the migration did not make (runs the source
  does not have), unless ``allow_target_runs``: those would be lost with the rest.

``dry_run`` counts what would be deleted and deletes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from starship_dags import sync_state
from starship_dags.exceptions import StarshipError
from starship_dags.operators.base import MigrationOperator, as_bool, as_name_list
from starship_dags.report import Summary

RESOURCE = "reset"
#: Folders Airflow keeps its own logs in, beside the tasks' (a DAG so named keeps its logs elsewhere).
AIRFLOW_LOG_FOLDERS = frozenset({"scheduler", "dag_processor_manager", "dag_processor", "triggerer"})


class ResetTargetOperator(MigrationOperator):
    """:param dag_ids: whose history to delete from the target.
    :param confirm_dag_ids: the same DAG ids again (any order): nothing is deleted otherwise.
    :param allow_target_runs: also reset a DAG that is unpaused on the target with runs of its own.
    """

    resource = RESOURCE
    template_fields = (*MigrationOperator.template_fields, "dag_ids", "confirm_dag_ids", "allow_target_runs")

    def __init__(self, *, dag_ids: Any, confirm_dag_ids: Any, allow_target_runs: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dag_ids = dag_ids
        self.confirm_dag_ids = confirm_dag_ids
        self.allow_target_runs = allow_target_runs

    def migrate(self, summary: Summary, context: Any) -> None:
        dag_ids, confirmed = as_name_list(self.dag_ids), as_name_list(self.confirm_dag_ids)
        if not dag_ids:
            raise ValueError("reset refused: no DAG ids given (dag_ids), nothing deleted")
        if sorted(set(dag_ids)) != sorted(set(confirmed)):
            raise ValueError(f"reset refused: the DAG ids typed twice differ ({', '.join(sorted(dag_ids))} against "
                             f"{', '.join(sorted(confirmed)) or 'nothing'}), nothing deleted")
        markers = sync_state.read_markers(self.target_hook)
        for dag_id in sorted(set(dag_ids)):
            try:
                self.reset_one(summary, dag_id, dag_id in markers)
            except StarshipError as err:
                summary.add("failed", f"DAG {dag_id!r}", str(err))

    def reset_one(self, summary: Summary, dag_id: str, marked: bool) -> None:
        target = self.target_hook
        runs = [run["run_id"] for run in target.iter_dag_runs(dag_id)]
        dag = target.rest_dag(dag_id) or {}
        own = set(runs) - {run["run_id"] for run in self.source_hook.iter_dag_runs(dag_id)} if runs else set()
        if own and dag.get("is_paused") is False and not as_bool(self.allow_target_runs):
            summary.add("failed", f"DAG {dag_id!r}", f"unpaused on the target with {len(own)} run(s) the migration did "
                        "not make (such as " + ", ".join(sorted(own)[:3]) + "); pause it, or allow the target's runs "
                        "to be deleted too; nothing deleted")
            return
        tis = list(target.iter_task_instances(dag_id))
        tries = sum(int(ti.get("try_number") or 0) for ti in tis)
        history = sum(1 for _ in target.iter_task_instance_history(dag_id))
        xcoms = sum(len(keys) for keys in target.xcom_entries(dag_id, set(runs)).values()) if runs else 0
        folders = [path for path in self.log_folders(dag_id) if path.exists()]
        what = (f"{len(runs)} runs ({len(own)} the target's own), {len(tis)} task instances, {history} retry-history "
                f"rows, {xcoms} XComs, the logs of {tries} tries" + (", the sync marker" if marked else ""))
        if summary.dry_run:
            summary.notes.append(f"{dag_id}: would delete {what}")
            summary.add("unchanged", f"DAG {dag_id!r}")
            return
        if marked:  # first: a reset stopped halfway must not leave a marker that says the history is whole
            sync_state.delete_marker(target, dag_id)
        if runs:
            target.delete_dag_runs(dag_id)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        summary.notes.append(f"{dag_id}: deleted {what}")
        summary.add("updated", f"DAG {dag_id!r}")
        self.log.info("%s: deleted %s", dag_id, what)

    @staticmethod
    def log_folders(dag_id: str) -> list[Path]:
        """Where this Airflow keeps the DAG's task logs: under its log folder, by the configured file
        name template (``dag_id=<id>/``) and by the pre-2.3 one (``<id>/``) it reads migrated runs by."""
        from airflow.configuration import conf

        base = Path(conf.get("logging", "base_log_folder"))
        folders = [base / f"dag_id={dag_id}"]
        if dag_id not in AIRFLOW_LOG_FOLDERS:  # never Airflow's own logs
            folders.append(base / dag_id)
        return folders


__all__ = ["ResetTargetOperator"]
