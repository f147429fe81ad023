"""Per-DAG sync markers: what makes an idle rerun cost one source request per DAG.

After the last history task of a DAG succeeds, a marker is stored on the **target** as an
Airflow Variable ``starship_dags.sync.<dag_id>``: the source's run count, a digest of its newest
page of runs (ids and states), the runs that were still unfinished, and the selection used.
The next run reads the newest page once; if count, digest and selection match, nothing changed
and the DAG's tasks skip their work. Any write for a DAG first deletes its marker, so a crash at
any point leaves no marker and the next run compares everything again: holes get filled.

Delete the variables (or run with "Full comparison") to force a complete comparison.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from starship_dags.exceptions import StarshipConflictError

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

PREFIX = "starship_dags.sync."
DESCRIPTION = "starship_dags incremental sync state (delete to force a full comparison)"
FORMAT = 1


def variable_key(dag_id: str) -> str:
    return PREFIX + dag_id


def is_marker_key(key: str) -> bool:
    return key.startswith(PREFIX)


#: Every variable this package keeps on the target starts with this (never a user variable).
INTERNAL_PREFIX = "starship_dags."


def is_internal_key(key: str) -> bool:
    return key.startswith(INTERNAL_PREFIX)


def page_digest(runs: list[dict[str, Any]]) -> str:
    pairs = sorted((r["run_id"], str(r.get("state"))) for r in runs)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:32]


def read_json_variables(target: StarshipHook, prefix: str) -> dict[str, Any]:
    """The target's variables under ``prefix`` whose value is JSON, by the rest of their key (one request)."""
    found = {}
    for variable in target.get_variables():
        if variable["key"].startswith(prefix):
            try:
                found[variable["key"][len(prefix):]] = json.loads(variable.get("val") or "")
            except ValueError:
                continue
    return found


def read_markers(target: StarshipHook) -> dict[str, dict[str, Any]]:
    """All markers on the target, by DAG id (one request)."""
    return {
        dag_id: value for dag_id, value in read_json_variables(target, PREFIX).items()
        if isinstance(value, dict) and value.get("format") == FORMAT
    }


def make_marker(*, source_url: str, run_count: int, digest: str, pending: list[str], selection: dict) -> dict:
    return {
        "format": FORMAT,
        "source": source_url,
        "run_count": run_count,
        "digest": digest,
        "pending": sorted(pending),
        "selection": selection,
    }


def unchanged(marker: dict | None, *, source_url: str, run_count: int, digest: str, selection: dict) -> bool:
    return bool(
        marker
        and marker.get("source") == source_url
        and marker.get("run_count") == run_count
        and marker.get("digest") == digest
        and marker.get("selection") == selection
    )


def delete_marker(target: StarshipHook, dag_id: str) -> None:
    target.delete_variable(variable_key(dag_id))


def write_marker(target: StarshipHook, dag_id: str, marker: dict) -> None:
    """Store the marker, replacing an older one. The copy deleted the older one before it wrote
    anything, so the first try mostly succeeds: one request, not a delete and a create."""
    variable = {"key": variable_key(dag_id), "val": json.dumps(marker), "description": DESCRIPTION}
    try:
        target.create_variable(variable)
    except StarshipConflictError:  # one is there (Starship inserts; it never overwrites)
        delete_marker(target, dag_id)
        target.create_variable(variable)
