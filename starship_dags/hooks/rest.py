"""The Airflow REST API routes of :class:`~starship_dags.hooks.starship.StarshipHook`: ``/api/v1`` on
Airflow 2, ``/api/v2`` on Airflow 3, reached with the same login or token as Starship.

Used where Starship does not serve something (XComs before 2.8 and on Airflow 3, logs outside
Astronomer environments and on Airflow 3, notes, changing a pool), to list what exists without a
request per task instance, and for the DAG state the cutover and the guard read. Listings page by what each page
held (servers cap ``limit`` at their ``maximum_page_limit``), and a listing whose pages do not add
up to the total it announced raises :class:`IncompleteListing`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

from starship_dags.exceptions import StarshipError
from starship_dags.hooks.streams import minor_number, pieces
from starship_dags.translate import parse_datetime


class IncompleteListing(StarshipError):
    """A REST listing whose pages did not add up to the total it announced."""


def describe_ti(row: dict[str, Any]) -> str:
    return "task instance {}/{}/{}[{}]".format(row.get("dag_id"), row.get("run_id"), row.get("task_id"),
                                               row.get("map_index", -1))


def ti_params(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}


class RestRoutes:
    """Mixed into StarshipHook (which gives ``json_of``, ``request``, ``airflow_major`` and friends)."""


    @property
    def rest_prefix(self) -> str:
        return "api/v1/" if self.airflow_major < 3 else "api/v2/"

    def _rest(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.json_of(method, self.rest_prefix + route, **kwargs)

    @staticmethod
    def rest_ti_route(dag_id: str, run_id: str, task_id: str) -> str:
        return "dags/{}/dagRuns/{}/taskInstances/{}".format(*(quote(str(p), safe="") for p in (dag_id, run_id, task_id)))

    def open_rest_log(self, dag_id: str, run_id: str, task_id: str, map_index: int,
                      try_number: int) -> Iterator[bytes] | None:
        """A task log as the server's log reader renders it, in pieces: plain text from Airflow 2,
        newline-delimited JSON records from Airflow 3, without its "log source details" group. None
        when the task instance (or that try) is unknown."""
        from starship_dags.hooks.log_format import strip_ndjson_header, strip_text_header

        accept = "text/plain" if self.airflow_major < 3 else "application/x-ndjson"
        response = self.request(
            "GET", f"{self.rest_prefix}{self.rest_ti_route(dag_id, run_id, task_id)}/logs/{int(try_number)}",
            params={"full_content": "true", "map_index": map_index}, headers={"Accept": accept}, stream=True,
            ok_statuses=(404,),
        )
        body = pieces(response)
        if body is None:
            return None
        return strip_ndjson_header(body) if self.airflow_major >= 3 else strip_text_header(body)

    def rest_log_sources(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
        """The beginning of a task log as the REST API renders it, where Airflow says which file it
        read or looked for (its "log source details"): text, with URL quoting undone; "" for a 404."""
        response = self.request(
            "GET", f"{self.rest_prefix}{self.rest_ti_route(dag_id, run_id, task_id)}/logs/{int(try_number)}",
            params={"full_content": "false", "map_index": map_index}, stream=True, ok_statuses=(404,),
            headers={"Accept": "text/plain" if self.airflow_major < 3 else "application/json"},
        )
        body = pieces(response)
        head = b""
        for piece in body or ():
            head += piece
            if len(head) >= 64 * 1024:
                break
        if body is not None:
            body.close()
        return unquote(head.decode("utf-8", "replace").replace("\\/", "/"))

    def xcom_entries(self, dag_id: str, run_ids: set[str]) -> dict[tuple[str, str, int], list[str]]:
        """The XComs of these runs of the DAG, ``{(run_id, task_id, map_index): [keys]}``, found by
        listing the REST API's ``xcomEntries`` (no values): the whole DAG in pages when that takes
        fewer requests than a listing per run (its first page tells how many there are), else run by
        run. Requests grow with the XComs and pages, not with the task instances.

        Raises :class:`IncompleteListing` when a listing does not add up (Airflow 2.7 and 2.8 order
        entries without their map index, so pages of a mapped task's XComs may overlap)."""
        if not run_ids:
            return {}
        first, total = self._xcom_page(dag_id, "~", 0)
        if not total:
            return {}
        if -(-total // max(len(first), 1)) > len(run_ids):  # more pages than runs: list run by run
            found: dict[tuple[str, str, int], list[str]] = {}
            for run_id in sorted(run_ids):
                found.update(self._listed(dag_id, run_id, *self._xcom_page(dag_id, run_id, 0)))
            return found
        listed = self._listed(dag_id, "~", first, total)
        return {key: keys for key, keys in listed.items() if key[0] in run_ids}

    def _xcom_page(self, dag_id: str, run_id: str, offset: int) -> tuple[list[dict[str, Any]], int]:
        return self._page(f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/~/xcomEntries",
                          "xcom_entries", offset)

    def _page(self, route: str, key: str, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of a REST listing, and the total it announces."""
        found = self._rest("GET", route, params={"limit": 1000, "offset": offset}) or {}
        return list(found.get(key) or []), int(found.get("total_entries") or 0)

    def _rest_of(self, page: Any, first: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
        """Every entry of a listing whose first page is ``first``: ``page(offset)`` gives the next; the
        server caps the page size, so the offset moves by what each page held."""
        entries, seen = list(first), len(first)
        while first and seen < total:
            first, _ = page(seen)
            entries += first
            seen += len(first)
        return entries

    def _listed(self, dag_id: str, run_id: str, first: list[dict[str, Any]], total: int) -> dict[tuple, list[str]]:
        """Every XCom entry of a listing whose first page is ``first``, by task instance."""
        entries = self._rest_of(lambda offset: self._xcom_page(dag_id, run_id, offset), first, total)
        dates = {parse_datetime(e.get("execution_date") or e.get("logical_date")) for e in entries if "run_id" not in e}
        runs_by_date = self._run_ids_by_date(dag_id, dates) if dates and run_id == "~" else {}
        found: dict[tuple[str, str, int], list[str]] = {}
        for entry in entries:
            run = entry.get("run_id") or (run_id if run_id != "~" else runs_by_date.get(
                parse_datetime(entry.get("execution_date") or entry.get("logical_date"))))
            keys = found.setdefault((run, entry["task_id"], int(entry.get("map_index", -1))), [])
            if entry["key"] not in keys:
                keys.append(entry["key"])
        if sum(len(keys) for keys in found.values()) < total or None in {key[0] for key in found}:
            raise IncompleteListing(self.starship_conn_id, "GET", f"/{self.rest_prefix}…/xcomEntries", 200,
                                    f"{sum(len(k) for k in found.values())} distinct XComs of {total} listed")
        return found

    def _run_ids_by_date(self, dag_id: str, dates: set[Any]) -> dict[Any, str]:
        """Airflow 2 lists XComs by the run's logical date, not its id: the ids of the runs of these dates."""
        found = {}
        for run in self.iter_dag_runs(dag_id):
            when = parse_datetime(run.get("execution_date") or run.get("logical_date"))
            if when in dates:
                found[when] = run["run_id"]
        return found

    # ------------------------------------------------------------------ notes of runs and task instances

    def run_notes(self, dag_id: str, run_ids: set[str]) -> dict[str, str | None]:
        """The notes of these runs (``None``: none), from the REST API's run listing: the whole DAG in
        pages when that takes fewer requests than one per run, else run by run."""
        if not run_ids:
            return {}
        route = f"dags/{quote(dag_id, safe='')}/dagRuns"
        first, total = self._page(route, "dag_runs", 0)
        if -(-total // max(len(first), 1)) > len(run_ids):
            return {run_id: (self._rest("GET", f"{route}/{quote(run_id, safe='')}") or {}).get("note")
                    for run_id in sorted(run_ids)}
        runs = self._rest_of(lambda offset: self._page(route, "dag_runs", offset), first, total)
        found = {r.get("dag_run_id") or r.get("run_id"): r.get("note") for r in runs}
        if len(found) < total:
            raise IncompleteListing(self.starship_conn_id, "GET", f"/{self.rest_prefix}{route}", 200,
                                    f"{len(found)} distinct runs of {total} listed")
        return {run_id: note for run_id, note in found.items() if run_id in run_ids}

    def task_instance_notes(self, dag_id: str, run_ids: set[str]) -> dict[tuple[str, str, int], str | None]:
        """The notes of these runs' task instances, ``{(run_id, task_id, map_index): note}``, from the
        REST API's task instance listing: the whole DAG in pages when that takes fewer requests than a
        listing per run, else run by run (and run by run when the DAG's pages did not add up: Airflow 2
        orders them by map index alone)."""
        if not run_ids:
            return {}
        dag = quote(dag_id, safe="")
        first, total = self._page(f"dags/{dag}/dagRuns/~/taskInstances", "task_instances", 0)
        if -(-total // max(len(first), 1)) <= len(run_ids):
            try:
                listed = self._ti_notes(f"dags/{dag}/dagRuns/~/taskInstances", first, total)
                return {key: note for key, note in listed.items() if key[0] in run_ids}
            except IncompleteListing as err:
                self.log.info("%s: %s; listing the runs one by one", dag_id, err.detail)
        found: dict[tuple[str, str, int], str | None] = {}
        for run_id in sorted(run_ids):
            route = f"dags/{dag}/dagRuns/{quote(run_id, safe='')}/taskInstances"
            found.update(self._ti_notes(route, *self._page(route, "task_instances", 0)))
        return found

    def _ti_notes(self, route: str, first: list[dict[str, Any]], total: int) -> dict[tuple[str, str, int], str | None]:
        entries = self._rest_of(lambda offset: self._page(route, "task_instances", offset), first, total)
        found = {(e.get("dag_run_id") or e.get("run_id"), e["task_id"], int(e.get("map_index", -1))): e.get("note")
                 for e in entries}
        if len(found) < total:
            raise IncompleteListing(self.starship_conn_id, "GET", f"/{self.rest_prefix}{route}", 200,
                                    f"{len(found)} distinct task instances of {total} listed")
        return found

    def set_run_note(self, dag_id: str, run_id: str, note: str | None) -> None:
        route = f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        item = f"note of run {dag_id}/{run_id}"
        if self.airflow_major < 3:  # Airflow 2 takes no null: an empty note is none
            self._rest("PATCH", f"{route}/setNote", json={"note": note or ""}, item=item)
        else:
            self._rest("PATCH", route, params={"update_mask": "note"}, json={"note": note}, item=item)

    def set_task_instance_note(self, dag_id: str, run_id: str, task_id: str, map_index: int, note: str | None) -> None:
        route = self.rest_ti_route(dag_id, run_id, task_id) + (f"/{int(map_index)}" if map_index >= 0 else "")
        item = f"note of {describe_ti(ti_params(dag_id, run_id, task_id, map_index))}"
        if self.airflow_major < 3:  # Airflow 2 takes no null: an empty note is none
            self._rest("PATCH", f"{route}/setNote", json={"note": note or ""}, item=item)
        else:
            self._rest("PATCH", route, params={"update_mask": "note"}, json={"note": note}, item=item)

    def update_pool(self, name: str, fields: dict[str, Any]) -> None:
        """Change some fields of an existing pool in place (one PATCH; the others stay as they are)."""
        if self.airflow_major < 3:  # Airflow 2 wants the name in the body and the mask comma-separated
            mask, named = ",".join(fields), {"name": name}
        else:  # Airflow 3: one update_mask parameter per field, the name as "pool"
            mask, named = list(fields), {"pool": name}
        self._rest("PATCH", f"pools/{quote(name, safe='')}", params={"update_mask": mask}, json={**named, **fields},
                   item=f"pool {name!r}")

    @property
    def default_pool_fields(self) -> frozenset[str]:
        """What the REST API lets change on ``default_pool``: Airflow 3 refuses its description."""
        return frozenset({"slots", "include_deferred"} | ({"description"} if self.airflow_major < 3 else set()))

    # ------------------------------------------------------------------ XComs, one task instance at a time

    def rest_xcom_keys(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
        found = self._rest("GET", self.rest_ti_route(dag_id, run_id, task_id) + "/xcomEntries",
                           params={"map_index": map_index, "limit": 1000})
        return [entry["key"] for entry in (found or {}).get("xcom_entries") or []]

    @property
    def rest_xcoms_as_text(self) -> bool:
        """Airflow 3.0 and 3.1 store an XCom created through the REST API as the JSON text of its value
        (3.2 stores the value itself), and their PATCH encodes it once more."""
        return self.airflow_major == 3 and minor_number(self.airflow_version) <= 1

    def rest_xcom_value(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, *,
                        decode_text: bool = False) -> Any:
        """The value of one XCom as the REST API gives it: JSON on Airflow 3, text on Airflow 2.
        ``decode_text``: on a server that stores REST-created XComs as text, the value that text holds."""
        found = self._rest("GET", f"{self.rest_ti_route(dag_id, run_id, task_id)}/xcomEntries/{quote(key, safe='')}",
                           params={"map_index": map_index})
        value = (found or {}).get("value")
        if decode_text and self.rest_xcoms_as_text and isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def rest_put_xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str, value: Any,
                      *, replace: bool = False) -> None:
        """Create an XCom (``replace``: update an existing one) through the Airflow 3 REST API."""
        route = self.rest_ti_route(dag_id, run_id, task_id) + "/xcomEntries"
        item = f"XCom {key!r} of {describe_ti(ti_params(dag_id, run_id, task_id, map_index))}"
        if replace:
            self._rest("PATCH", f"{route}/{quote(key, safe='')}", json={"value": value, "map_index": map_index},
                       item=item)
        else:
            self._rest("POST", route, json={"key": key, "value": value, "map_index": map_index}, item=item)

    def rest_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The REST API's view of one DAG (pause state, next run, file token); None if unknown."""
        response = self.request("GET", f"{self.rest_prefix}dags/{quote(dag_id, safe='')}", ok_statuses=(404,),
                                item=f"DAG {dag_id!r}")
        return None if response.status_code == 404 else response.json()

    def rest_active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Queued and running runs of a DAG (none when the DAG is unknown)."""
        response = self.request(
            "GET", f"{self.rest_prefix}dags/{quote(dag_id, safe='')}/dagRuns", ok_statuses=(404,),
            params={"state": ["queued", "running"], "limit": 100}, item=f"DAG {dag_id!r}",
        )
        return [] if response.status_code == 404 else list(response.json().get("dag_runs") or [])

    def rest_reparse(self, file_token: str) -> bool:
        """Ask the DAG processor to parse a DAG file soon (Airflow 2.6+ and 3); False if it cannot be asked."""
        try:
            response = self.request("PUT", f"{self.rest_prefix}parseDagFile/{quote(file_token, safe='')}",
                                    ok_statuses=(404, 409))
        except StarshipError as err:  # a courtesy: the processor re-parses on its own anyway
            self.log.info("Could not ask for a re-parse: %s", err)
            return False
        return response.status_code < 300
