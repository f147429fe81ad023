"""Variables: key, value and description, values copied byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starship_dags.compat import is_sensitive_key
from starship_dags.operators.keyed import KeyedResourceOperator
from starship_dags.sync_state import is_internal_key

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook


class VariablesMigrationOperator(KeyedResourceOperator):
    """Copy variables. Values are never logged; those under sensitive keys are also masked."""

    resource = "variables"
    label = "variable"
    key_field = "key"
    fields = ("key", "val", "description")

    def secret_values(self, item: dict[str, Any]) -> list[str]:
        return [item["val"]] if is_sensitive_key(item["key"]) and item.get("val") else []

    @classmethod
    def list_items(cls, hook: StarshipHook) -> list[dict[str, Any]]:
        # The migration's own state (sync markers, cutover records) is not user variables.
        return [v for v in hook.get_variables() if not is_internal_key(v["key"])]

    def create_item(self, hook: StarshipHook, item: dict[str, Any]) -> None:
        hook.create_variable(item)

    def delete_item(self, hook: StarshipHook, key: str) -> None:
        hook.delete_variable(key)
