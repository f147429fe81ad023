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


from starship_dags import CONN_TYPE, CONNECTION_FORM
from starship_dags.exceptions import StarshipError, StarshipNotInstalledError
from starship_dags.hooks.batching import DEFAULT_MAX_BATCH_BYTES, PostResult, post_list
from starship_dags.hooks.paging import RunPager, run_pages
from starship_dags.hooks.rest import IncompleteListing, RestRoutes, describe_ti, ti_params
from starship_dags.hooks.streams import minor_number, pieces
from starship_dags.hooks.transport import AirflowHttpHook
from starship_dags.translate import history_natural_key, ti_natural_key

STARSHIP = "api/starship/"

CHUNK = 256 * 1024  # bytes of a log read at a time


class StarshipHook(RestRoutes, AirflowHttpHook):
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

    # No pool DELETE: Starship's (2.10.1) drops its ``name`` filter and deletes every pool of the
    # server. A pool is changed in place through the REST API instead (``update_pool``).

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
        return pieces(response)

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


def describe_try(row: dict[str, Any]) -> str:
    return f"{describe_ti(row)} try {row.get('try_number')}"


__all__ = ["IncompleteListing", "StarshipHook", "describe_ti", "describe_try", "ti_params"]
