"""XComs of the migrated task instances: every finished task instance of a DAG's planned runs, every
map index, every key.

**Finding them.** The REST API lists a DAG's XCom entries without their values, and the target's
too, so only task instances that have XComs are read and written: the requests grow with the
XComs, not with the task instances (most have none). Where a side cannot list them, every finished
task instance is asked instead.

**Reading the source.** Starship ``/xcom`` where it serves XComs (Airflow 2.8 to 2.11: the stored
bytes), else the REST API (``xcomEntries``): JSON on Airflow 3, Python text of the value on 2.7.
**Writing the target.** Starship ``/xcom`` on Airflow 2 (bytes verbatim), the REST API on Airflow 3
(decoded JSON; a value that is not JSON is named as skipped, not dropped). An XCom already on the
target with the same value is unchanged; one that differs follows the conflict policy. Starship
deletes all of a task instance's XComs at once, so replacing one on Airflow 2 puts every one back.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starship_dags.exceptions import StarshipError, StarshipRateLimitedError, StarshipTLSError, StarshipTransportError
from starship_dags.operators.copier import Copier, ti_key, ti_name

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

_NOT_JSON = object()


class XComCopier(Copier):
    """XComs of every finished task instance of the planned runs (every map index, every key)."""

    resource = "xcoms"
    listed = False  # whether this DAG's XComs were found by listing

    def jobs(self) -> Iterator[dict[str, Any]]:
        """List the XComs of the planned runs on both sides: a job per task instance that has any;
        where a side's REST API cannot list them, a job per finished task instance (it asks)."""
        op, plan = self.op, self.op.plan
        wanted, dag_id = set(plan.artifact_run_ids), op.dag_to_migrate
        try:
            on_source = op.source_hook.xcom_entries(dag_id, wanted)
            # runs written by this migration run cannot have XComs on the target yet
            on_target = op.target_hook.xcom_entries(dag_id, wanted & set(plan.artifact_existing_run_ids))
        except (StarshipTransportError, StarshipTLSError, StarshipRateLimitedError):
            raise
        except StarshipError as err:
            self.log.warning("%s: XComs could not be listed (%s); asking for every task instance's instead", dag_id, err)
            self.summary.notes.append(f"XComs not listed ({err.detail or err}): asked for per task instance")
            return self.finished_task_instances()
        self.listed = True
        self.log.info("%s: %d task instances with XComs in %d runs (%d on the target)", dag_id, len(on_source),
                      len(wanted), len(on_target))
        return ({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "keys": keys,
                 "target_keys": on_target.get((run_id, task_id, map_index), [])}
                for (run_id, task_id, map_index), keys in sorted(on_source.items()))

    def prepare(self, first: dict[str, Any]) -> bool:
        source_major, target_major = self.op.majors
        self.summary.notes.append(
            ("listed through the REST API (xcomEntries), " if self.listed else "")
            + "read through " + ("Starship /xcom" if self.op.source_hook.serves_xcoms else "the REST API (xcomEntries)")
            + ", written through " + ("Starship /xcom" if target_major < 3 else "the REST API (xcomEntries)")
        )
        return True

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook) -> None:
        ti = ti_key(row)
        wanted = {key: (raw, _decode(raw)) for key, raw in source.read_xcoms(*ti, keys=row.get("keys")).items()}
        if not wanted:
            return
        write = self._to_starship if target.airflow_major < 3 else self._to_rest
        write(target, ti, ti_name(row), wanted, row.get("target_keys"))

    def _to_starship(self, target: StarshipHook, ti: tuple, label: str, wanted: dict, listed: list[str] | None) -> None:
        """``listed``: the keys a listing found on the target (None: not listed; ask)."""
        existing = {} if listed == [] else {x["key"]: base64.b64decode(x.get("value") or "")
                                            for x in target.get_xcoms(*ti)}
        final, created, updated = dict(existing), [], []
        for key, (raw, _value) in wanted.items():
            name = f"XCom {key!r} of {label}"
            if key not in existing:
                created.append(name)
                final[key] = raw
            elif self.must_replace(name, _same(existing[key], raw), "differs on the target"):
                updated.append(name)
                final[key] = raw
        if not self.summary.dry_run:
            if updated:  # Starship deletes all XComs of a task instance at once: put every one back
                target.delete_xcoms(*ti)
                keys = list(final)
            else:
                keys = [k for k in final if k not in existing]
            for key in keys:
                self._post_starship(target, ti, key, final[key])
        for name in created:
            self.add("created", name)
        for name in updated:
            self.add("updated", name)

    @staticmethod
    def _post_starship(target: StarshipHook, ti: tuple, key: str, raw: bytes) -> None:
        dag_id, run_id, task_id, map_index = ti
        target.create_xcom({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
                            "key": key, "value": base64.b64encode(raw).decode()})

    def _to_rest(self, target: StarshipHook, ti: tuple, label: str, wanted: dict, listed: list[str] | None) -> None:
        existing = set(target.rest_xcom_keys(*ti) if listed is None else listed)
        for key, (_raw, value) in wanted.items():
            name = f"XCom {key!r} of {label}"
            if value is _NOT_JSON:
                self.add("skipped", name, "its value is not JSON (pickled?): Airflow 3 stores XComs as JSON")
                continue
            if key in existing:
                if not self.must_replace(name, target.rest_xcom_value(*ti, key, decode_text=True) == value,
                                         "differs on the target"):
                    continue
                if target.rest_xcoms_as_text:
                    self.add("skipped", name, "differs on the target, and Airflow 3.0 and 3.1 can replace "
                             "an XCom only through a REST call that stores its value encoded twice")
                    continue
                outcome = "updated"
            else:
                outcome = "created"
            if not self.summary.dry_run:
                target.rest_put_xcom(*ti, key, value, replace=outcome == "updated")
            self.add(outcome, name)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _same(a: bytes, b: bytes) -> bool:
    if a == b:
        return True
    da, db = _decode(a), _decode(b)
    return da is not _NOT_JSON and da == db


__all__ = ["XComCopier"]
