"""Pools: name, slots, description and include_deferred (Airflow 2.7+; absent means False).

A pool that differs is changed in place through the REST API, never deleted and inserted again:
Starship's pool DELETE deletes every pool of the server, whatever name it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starship_dags.operators.keyed import KeyedResourceOperator

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

DEFAULT_POOL = "default_pool"


class PoolsMigrationOperator(KeyedResourceOperator):
    """Copy pools, ``default_pool`` included (its slots are migrated with ``overwrite``)."""

    resource = "pools"
    label = "pool"
    key_field = "name"
    fields = ("name", "slots", "description", "include_deferred")

    def normalize(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": item["name"],
            "slots": int(item["slots"]) if item.get("slots") is not None else None,
            "description": item.get("description"),
            "include_deferred": bool(item.get("include_deferred") or False),
        }

    def comparable(self, item: dict[str, Any]) -> dict[str, Any]:
        """``default_pool`` on the fields the target lets change (Airflow 3 keeps its own description)."""
        found = self.normalize(item)
        if found["name"] != DEFAULT_POOL:
            return found
        allowed = self.target_hook.default_pool_fields
        return {f: v for f, v in found.items() if f == "name" or f in allowed}

    @classmethod
    def list_items(cls, hook: StarshipHook) -> list[dict[str, Any]]:
        return hook.get_pools()

    def create_item(self, hook: StarshipHook, item: dict[str, Any]) -> None:
        hook.create_pool(item)

    def cannot_update(self, key: str) -> str | None:
        if "/" in key:  # the servers decode %2F before routing: no pool route can name it
            return ("the REST API cannot address a pool whose name holds '/', and Starship cannot change a pool: "
                    "change it in the target's UI, then run again")
        return None

    def replace_on_target(self, key: str, wanted: dict[str, Any], existing: dict[str, Any]) -> None:
        """One PATCH of the differing fields: the pool is never missing from the target."""
        self.target_hook.update_pool(key, {f: wanted[f] for f in self.differing_fields(wanted, existing)})
