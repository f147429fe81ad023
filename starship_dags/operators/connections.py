"""Connections, passwords and extras included (Starship returns them decrypted)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from starship_dags.compat import is_sensitive_key
from starship_dags.operators.keyed import KeyedResourceOperator

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook


def _parsed_extra(extra: Any) -> Any:
    """Extras are compared as JSON when they are JSON (servers may re-serialise them)."""
    if isinstance(extra, str):
        try:
            return json.loads(extra)
        except ValueError:
            return extra
    return extra


#: Connection ids Airflow 2.7+ and 3 accept (their model turns any other id into NULL).
VALID_CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$", re.ASCII)


def _sensitive_values(value: Any, sensitive: bool = False, depth: int = 0) -> list[str]:
    """Values under sensitive keys (``password``, ``token``, ``api_key``...) at any depth of an extra."""
    if depth > 50:
        return []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _sensitive_values(v, sensitive or is_sensitive_key(str(k)), depth + 1)]
    if isinstance(value, list):
        return [s for v in value for s in _sensitive_values(v, sensitive, depth + 1)]
    return [value] if sensitive and isinstance(value, str) and value else []


class ConnectionsMigrationOperator(KeyedResourceOperator):
    """Copy connections. A connection the target rejects (e.g. a non-JSON extra on Airflow 3)
    is reported by id; the others still migrate."""

    resource = "connections"
    label = "connection"
    key_field = "conn_id"
    fields = ("conn_id", "conn_type", "host", "port", "schema", "login", "password", "extra", "description")

    def normalize(self, item: dict[str, Any]) -> dict[str, Any]:
        normal = super().normalize(item)
        if normal["port"] not in (None, ""):
            normal["port"] = int(normal["port"])
        if isinstance(normal["extra"], dict):
            normal["extra"] = json.dumps(normal["extra"])
        return normal

    def comparable(self, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "extra": _parsed_extra(item.get("extra"))}

    def secret_values(self, item: dict[str, Any]) -> list[str]:
        values = [item.get("password")]
        extra = _parsed_extra(item.get("extra"))
        if isinstance(extra, str):
            values.append(extra)  # not JSON: no telling which part is secret, so all of it is
        else:
            values += _sensitive_values(extra)
        return [v for v in values if v]

    def refused_by_target(self, key: str) -> str | None:
        if VALID_CONN_ID.match(key):
            return None
        return (
            "Airflow 2.7+ and 3 accept connection ids of 1 to 250 ASCII letters, digits and _ # ! ( ) - . : / \\ "
            "only: rename it on the source (or recreate it on the target under a valid id)"
        )

    @classmethod
    def list_items(cls, hook: StarshipHook) -> list[dict[str, Any]]:
        return hook.get_connections()

    def create_item(self, hook: StarshipHook, item: dict[str, Any]) -> None:
        hook.create_connection(item)

    def delete_item(self, hook: StarshipHook, key: str) -> None:
        hook.delete_connection(key)
