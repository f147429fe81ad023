"""StarshipHook: one method per route of the Starship plugin and of the Airflow REST API.

The transport (retries, logins, typed errors) is :class:`~starship_dags.hooks.transport.AirflowHttpHook`;
list POSTs go through :mod:`~starship_dags.hooks.batching`, run-paged reads through
:mod:`~starship_dags.hooks.paging`. Operators call these methods and get data or byte streams back,
never an HTTP response: every URL of the package is spelled in this module.

Starship routes live under ``/api/starship/``; the REST API under ``/api/v1`` (Airflow 2) or
``/api/v2`` (Airflow 3), reached with the same login or token.

Longer than the project's 400 lines on purpose: one short method per route of two APIs, kept in
one module so that every URL the package calls can be found in one place.
"""

from __future__ import annotations

import ast
import base64
import copy
import json
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import IO, Any
from urllib.parse import quote, unquote

import requests

from starship_dags import CONN_TYPE, CONNECTION_FORM
from starship_dags.exceptions import StarshipError, StarshipNotInstalledError
from starship_dags.hooks.batching import DEFAULT_MAX_BATCH_BYTES, PostResult, post_list
from starship_dags.hooks.paging import RunPager, run_pages
from starship_dags.hooks.transport import AirflowHttpHook
from starship_dags.translate import history_natural_key, parse_datetime, ti_natural_key

STARSHIP = "api/starship/"


class IncompleteListing(StarshipError):
    """A REST listing whose pages did not add up to the total it announced."""

CHUNK = 256 * 1024  # bytes of a log read at a time


class StarshipHook(AirflowHttpHook):
    """Talks to one Airflow through its Starship plugin (and, for logs and XComs, its REST API).

    :param max_batch_bytes: largest body of a list POST; defaults to the connection's
        ``extra.max_batch_bytes`` or 900,000 bytes.
    """

    default_conn_name = "starship_source"
    conn_type = CONN_TYPE
    hook_name = "Starship (Airflow migration)"

    def __init__(self, starship_conn_id: str = default_conn_name, *, max_batch_bytes: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(starship_conn_id, **kwargs)
        self._max_batch_bytes_arg = max_batch_bytes

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return copy.deepcopy(CONNECTION_FORM)

    @cached_property
    def max_batch_bytes(self) -> int:
        return int(self.number(self._max_batch_bytes_arg, "max_batch_bytes", DEFAULT_MAX_BATCH_BYTES))

    def sibling(self, *, version: str | None = None) -> StarshipHook:
        """A hook for another thread (see ``AirflowHttpHook.sibling``) that knows the server's
        version: ``version``, or the one this hook has read, if any (no request)."""
        hook = super().sibling()
        hook._max_batch_bytes_arg = self._max_batch_bytes_arg
        hook.known_version(version or self.__dict__.get("airflow_version"))
        return hook

    def _starship(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.json_of(method, STARSHIP + route, **kwargs)

    # ------------------------------------------------------------------ the server

    def info(self) -> dict[str, Any]:
        """``{"airflow_version", "starship_version"}``; older Starship only has ``/airflow_version``."""
        try:
            return self._starship("GET", "info")
        except StarshipError as err:
            if err.status != 404:
                raise
        response = self.request("GET", STARSHIP + "airflow_version", ok_statuses=(404,))
        if response.status_code == 404:
            raise StarshipNotInstalledError(self.starship_conn_id, "GET", f"/{STARSHIP}info", 404)
        return {"airflow_version": response.text.strip().strip('"'), "starship_version": None}

    @cached_property
    def airflow_version(self) -> str:
        return str(self.info()["airflow_version"])

    @cached_property
    def airflow_major(self) -> int:
        return int(self.airflow_version.split(".", 1)[0])

    def known_version(self, version: Any) -> None:
        """Take ``version`` as the server's Airflow version, read moments ago by another task of the
        same run: spares this hook its version request. Nothing changes when ``version`` is empty or
        the hook already has one."""
        if version and "airflow_version" not in self.__dict__:
            self.__dict__["airflow_version"] = str(version)  # where the cached property keeps it

    def health(self) -> str:
        return self.request("GET", STARSHIP + "health").text

    def env_vars(self) -> dict[str, str]:
        return self._starship("GET", "env_vars")

    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.info()
        except Exception as err:  # the connection form shows this text
            return False, str(err)
        return True, f"Starship {info.get('starship_version')} on Airflow {info.get('airflow_version')}"

    # ------------------------------------------------------------------ pools, variables, connections

    def get_pools(self) -> list[dict[str, Any]]:
        return self._starship("GET", "pools")

    def create_pool(self, pool: dict[str, Any]) -> dict[str, Any]:
        return self._starship("POST", "pools", json=pool, item=f"pool {pool.get('name')!r}")

    def delete_pool(self, name: str) -> None:
        self.request("DELETE", STARSHIP + "pools", params={"name": name}, item=f"pool {name!r}")

    def get_variables(self) -> list[dict[str, Any]]:
        return self._starship("GET", "variables")

    def create_variable(self, variable: dict[str, Any]) -> dict[str, Any]:
        return self._starship("POST", "variables", json=variable, item=f"variable {variable.get('key')!r}")

    def delete_variable(self, key: str) -> None:
        self.request("DELETE", STARSHIP + "variables", params={"key": key}, item=f"variable {key!r}")

    def get_connections(self) -> list[dict[str, Any]]:
        return self._starship("GET", "connections")

    def create_connection(self, connection: dict[str, Any]) -> dict[str, Any]:
        return self._starship("POST", "connections", json=connection,
                              item=f"connection {connection.get('conn_id')!r}")

    def delete_connection(self, conn_id: str) -> None:
        self.request("DELETE", STARSHIP + "connections", params={"conn_id": conn_id}, item=f"connection {conn_id!r}")

    # ------------------------------------------------------------------ DAGs, runs, task instances

    def get_dags(self) -> list[dict[str, Any]]:
        return self._starship("GET", "dags")

    def set_dag_paused(self, dag_id: str, is_paused: bool) -> Any:
        return self._starship("PATCH", "dags", json={"dag_id": dag_id, "is_paused": is_paused}, item=f"DAG {dag_id!r}")

    def get_dag_runs(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._starship("GET", "dag_runs", params={"dag_id": dag_id, "limit": limit, "offset": offset})

    def get_task_instances(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Task instances of ``limit`` runs starting at ``offset`` (Starship pages by runs)."""
        return self._starship("GET", "task_instances", params={"dag_id": dag_id, "limit": limit, "offset": offset})

    def get_task_instance_history(self, dag_id: str, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._starship("GET", "task_instance_history",
                              params={"dag_id": dag_id, "limit": limit, "offset": offset})

    def iter_dag_runs(self, dag_id: str, *, page_size: int = 500,
                      first: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every run of the DAG; if paging lost some (ties in start dates), one more read in a single page."""
        seen: set[str] = set()
        total = 0
        for page in run_pages(self.get_dag_runs, dag_id, "dag_runs", lambda r: r["run_id"], RunPager(fixed=page_size),
                              first=first):
            total = page.total
            seen |= page.runs
            yield from page.rows
        if len(seen) < total:
            self.log.warning("%s: paging returned %d of %d runs; reading them in one request", dag_id, len(seen), total)
            for run in self.get_dag_runs(dag_id, limit=total + page_size, offset=0).get("dag_runs") or []:
                if run["run_id"] not in seen:
                    seen.add(run["run_id"])
                    yield run

    def iter_task_instances(self, dag_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        for page in run_pages(self.get_task_instances, dag_id, "task_instances", ti_natural_key,
                              RunPager(fixed=page_size)):
            yield from page.rows

    def iter_task_instance_history(self, dag_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        for page in run_pages(self.get_task_instance_history, dag_id, "task_instances", history_natural_key,
                              RunPager(fixed=page_size)):
            yield from page.rows

    def post_list(self, route: str, key: str, items: Sequence[dict[str, Any]], *, describe=None,
                  hold_tail: bool = False) -> PostResult:
        """POST ``{key: items}`` to a Starship route in byte-bounded batches (see ``batching``)."""
        return post_list(self, STARSHIP + route, key, items, self.max_batch_bytes, describe=describe,
                         hold_tail=hold_tail)

    def create_dag_runs(self, dag_runs: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("dag_runs", "dag_runs", dag_runs, describe=lambda r: f"run {r.get('run_id')!r}",
                              hold_tail=hold_tail)

    def create_task_instances(self, task_instances: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("task_instances", "task_instances", task_instances, describe=describe_ti,
                              hold_tail=hold_tail)

    def create_task_instance_history(self, rows: Sequence[dict[str, Any]], *, hold_tail: bool = False) -> PostResult:
        return self.post_list("task_instance_history", "task_instances", rows, describe=describe_try,
                              hold_tail=hold_tail)

    def delete_dag_runs(self, dag_id: str) -> None:
        """Deletes **every** run of the DAG (Starship has no per-run delete)."""
        self.request("DELETE", STARSHIP + "dag_runs", params={"dag_id": dag_id}, item=f"DAG {dag_id!r}")

    # ------------------------------------------------------------------ XComs and logs through Starship
    # (Airflow 2.8+ servers; logs only where ASTRONOMER_ENVIRONMENT is local or cloud)

    @property
    def keeps_retry_history(self) -> bool:
        """Airflow keeps a row per earlier try (``task_instance_history``) from 2.10 on."""
        return self.airflow_major >= 3 or minor_number(self.airflow_version) >= 10

    @property
    def serves_xcoms(self) -> bool:
        """Starship serves XComs on Airflow 2.8 to 2.11 (it answers 409 on 2.7, 500 on Airflow 3)."""
        return self.airflow_major == 2 and minor_number(self.airflow_version) >= 8

    def read_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
                   keys: list[str] | None = None) -> dict[str, bytes]:
        """Every XCom of a task instance (``keys``: those a listing found) as ``{key: stored bytes}``:
        through Starship where it serves XComs (the very bytes, one request), else through the REST
        API (a request per key). Airflow 3 gives the JSON value; Airflow 2.7 gives Python text of the
        value, read back as a Python literal where it is one (so a text value that reads as a number,
        list or dict arrives as that) and as text otherwise."""
        if self.serves_xcoms:
            return {x["key"]: base64.b64decode(x.get("value") or "") for x in self.get_xcoms(dag_id, run_id, task_id, map_index)}
        found = {}
        for key in keys if keys is not None else self.rest_xcom_keys(dag_id, run_id, task_id, map_index):
            value = self.rest_xcom_value(dag_id, run_id, task_id, map_index, key)
            if self.airflow_major < 3 and isinstance(value, str):
                try:
                    value = ast.literal_eval(value)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    pass
            found[key] = json.dumps(value).encode()
        return found

    def get_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """``[{"key", "value"}]`` with ``value`` the base64 of the stored bytes."""
        return self._starship("GET", "xcom", params=ti_params(dag_id, run_id, task_id, map_index)) or []

    def create_xcom(self, xcom: dict[str, Any]) -> Any:
        return self._starship("POST", "xcom", json=xcom, item=describe_ti(xcom) + f" key {xcom.get('key')!r}")

    def delete_xcoms(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        """Deletes every XCom of the task instance (Starship has no per-key delete)."""
        self.request("DELETE", STARSHIP + "xcom", params=ti_params(dag_id, run_id, task_id, map_index))

    def open_task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int,
                      try_number: int) -> Iterator[bytes] | None:
        """The raw log file in pieces, or None if there is none. Close the iterator when leaving it early."""
        params = {**ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        response = self.request("GET", STARSHIP + "task_log", params=params, stream=True, ok_statuses=(404,),
                                headers={"Accept": "*/*"})
        return _pieces(response)

    def put_task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int,
                     body: bytes | IO[bytes]) -> None:
        """Write (replace) one log file; ``body`` may be an open file, sent in pieces."""
        params = {**ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        self.request("POST", STARSHIP + "task_log", params=params, data=body,
                     headers={"Content-Type": "application/octet-stream"},
                     item=f"log of {describe_ti(params)} try {try_number}")

    def delete_task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> None:
        params = {**ti_params(dag_id, run_id, task_id, map_index), "try_number": try_number}
        self.request("DELETE", STARSHIP + "task_log", params=params)

    # ------------------------------------------------------------------ the Airflow REST API

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
        pieces = _pieces(response)
        if pieces is None:
            return None
        return strip_ndjson_header(pieces) if self.airflow_major >= 3 else strip_text_header(pieces)

    def rest_log_sources(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
        """The beginning of a task log as the REST API renders it, where Airflow says which file it
        read or looked for (its "log source details"): text, with URL quoting undone; "" for a 404."""
        response = self.request(
            "GET", f"{self.rest_prefix}{self.rest_ti_route(dag_id, run_id, task_id)}/logs/{int(try_number)}",
            params={"full_content": "false", "map_index": map_index}, stream=True, ok_statuses=(404,),
            headers={"Accept": "text/plain" if self.airflow_major < 3 else "application/json"},
        )
        pieces = _pieces(response)
        head = b""
        for piece in pieces or ():
            head += piece
            if len(head) >= 64 * 1024:
                break
        if pieces is not None:
            pieces.close()
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
        found = self._rest("GET", f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances/~/"
                           "xcomEntries", params={"limit": 1000, "offset": offset}) or {}
        return list(found.get("xcom_entries") or []), int(found.get("total_entries") or 0)

    def _listed(self, dag_id: str, run_id: str, first: list[dict[str, Any]], total: int) -> dict[tuple, list[str]]:
        """Every entry of a listing whose first page is ``first`` (the server caps the page size: the
        offset moves by what each page held), by task instance."""
        entries, seen = list(first), len(first)
        while first and seen < total:
            first, _ = self._xcom_page(dag_id, run_id, seen)
            entries += first
            seen += len(first)
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


def _pieces(response: requests.Response) -> Iterator[bytes] | None:
    """A streamed answer's body in pieces (None for a 404); the connection is released at the end,
    or when the caller closes the iterator."""
    if response.status_code == 404:
        response.close()
        return None

    def read() -> Iterator[bytes]:
        try:
            yield from (piece for piece in response.iter_content(CHUNK) if piece)
        finally:
            response.close()

    return read()


def minor_number(version: str) -> int:
    """``"2.7.3"`` -> 7."""
    parts = str(version).split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def ti_params(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}


def describe_ti(row: dict[str, Any]) -> str:
    return "task instance {}/{}/{}[{}]".format(row.get("dag_id"), row.get("run_id"), row.get("task_id"),
                                               row.get("map_index", -1))


def describe_try(row: dict[str, Any]) -> str:
    return f"{describe_ti(row)} try {row.get('try_number')}"


__all__ = ["StarshipHook", "describe_ti", "describe_try", "ti_params"]
