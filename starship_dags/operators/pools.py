"""Pools: name, slots, description and include_deferred (Airflow 2.7+; absent means False)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starship_dags.operators.keyed import KeyedResourceOperator

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook


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

    @classmethod
    def list_items(cls, hook: StarshipHook) -> list[dict[str, Any]]:
        return hook.get_pools()

    def create_item(self, hook: StarshipHook, item: dict[str, Any]) -> None:
        hook.create_pool(item)

    def delete_item(self, hook: StarshipHook, key: str) -> None:
        hook.delete_pool(key)
