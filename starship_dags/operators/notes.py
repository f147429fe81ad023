"""Notes of the copied runs and task instances: the text people leave on them in the UI.

Starship copies neither (they live in ``dag_run_note`` and ``task_instance_note``); the REST API
reads them (Airflow 2.5+ and 3) in pages, and writes them one at a time (Airflow 2: ``setNote``;
Airflow 3: a PATCH of the run or task instance). Only the notes that differ are written. A note the
target has and the source does not, or has differently, follows the conflict policy (``overwrite``
makes it the source's, removing it when the source has none). The target records the connection's
user as a written note's author: the source's author cannot be carried over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starship_dags.operators.copier import Copier

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook


class NoteCopier(Copier):
    """Notes of the planned runs and of their task instances (every map index)."""

    resource = "notes"

    def jobs(self) -> Iterator[dict[str, Any]]:
        """One job per note to compare or write: the source's notes of the planned runs and their task
        instances, beside the target's of the runs it had before (runs written now have none)."""
        op, plan = self.op, self.op.plan
        dag_id, runs = op.dag_to_migrate, set(plan.artifact_run_ids)
        existing = runs & set(plan.artifact_existing_run_ids)
        source, target = op.source_hook, op.target_hook
        wanted = {("run", run_id): note for run_id, note in source.run_notes(dag_id, runs).items()}
        wanted.update((("ti", *key), note) for key, note in source.task_instance_notes(dag_id, runs).items())
        there = {("run", run_id): note for run_id, note in target.run_notes(dag_id, existing).items()}
        there.update((("ti", *key), note) for key, note in target.task_instance_notes(dag_id, existing).items())
        self.log.info("%s: %d notes on the source, %d on the target in %d runs", dag_id,
                      sum(1 for n in wanted.values() if n), sum(1 for n in there.values() if n), len(runs))
        for key in sorted(set(wanted) | {k for k, n in there.items() if n}, key=str):
            if wanted.get(key) or there.get(key):
                yield {"dag_id": dag_id, "key": key, "note": wanted.get(key) or None, "existing": there.get(key) or None}

    def prepare(self, first: dict[str, Any]) -> bool:
        self.summary.notes.append("read and written through the REST API; the target records the connection's user "
                                  "as each written note's author")
        return True

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook) -> None:
        key, note, existing = row["key"], row["note"], row["existing"]
        name = f"note of run {row['dag_id']}/{key[1]}" if key[0] == "run" else \
            f"note of {row['dag_id']}/{key[1]}/{key[2]}" + (f"[{key[3]}]" if key[3] >= 0 else "")
        if existing is None:
            outcome = "created"
        elif not self.must_replace(name, existing == note, "a different note is on the target"):
            return
        else:
            outcome = "updated"
        if not self.summary.dry_run:
            if key[0] == "run":
                target.set_run_note(row["dag_id"], key[1], note)
            else:
                target.set_task_instance_note(row["dag_id"], key[1], key[2], key[3], note)
        self.add(outcome, name)


__all__ = ["NoteCopier"]
