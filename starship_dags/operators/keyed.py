"""The transfer shape of pools, variables and connections: items identified by one key.

Read both lists once, compare item by item on the fields that define the item, and write only what
differs, according to the conflict policy. Starship can only insert: an overwrite deletes the
target's item, inserts the source's, and puts the old one back if the insert fails (pools change in
place instead, see ``pools.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starship_dags.exceptions import StarshipConflictError, StarshipError
from starship_dags.operators.base import PROGRESS_EVERY, MigrationOperator, as_name_list, resolve_conflict
from starship_dags.report import Summary

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook


class KeyedResourceOperator(MigrationOperator):
    """Pools, variables and connections: items identified by one key, one POST per item.

    Subclasses set ``resource``, ``label``, ``key_field`` and ``fields`` and the three hook calls.
    """

    label = "item"
    key_field = "key"
    fields: tuple[str, ...] = ()
    template_fields = (*MigrationOperator.template_fields, "names")

    def __init__(self, *, names: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = names

    # -- per resource

    @classmethod
    def list_items(cls, hook: StarshipHook) -> list[dict[str, Any]]:
        raise NotImplementedError

    def create_item(self, hook: StarshipHook, item: dict[str, Any]) -> None:
        raise NotImplementedError

    def delete_item(self, hook: StarshipHook, key: str) -> None:
        raise NotImplementedError

    def normalize(self, item: dict[str, Any]) -> dict[str, Any]:
        """The item as it is compared and written: the defining fields only."""
        return {f: item.get(f) for f in self.fields}

    def comparable(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.normalize(item)

    def secret_values(self, item: dict[str, Any]) -> list[str]:
        return []

    # -- the transfer

    def describe(self, key: str) -> str:
        return f"{self.label} {key!r}"

    def differing_fields(self, source: dict[str, Any], target: dict[str, Any]) -> list[str]:
        a, b = self.comparable(source), self.comparable(target)
        return [f for f in self.fields if a.get(f) != b.get(f)]

    def migrate(self, summary: Summary, context: Any) -> None:
        source = {item[self.key_field]: self.normalize(item) for item in self.list_items(self.source_hook)}
        self.add_secrets(s for item in source.values() for s in self.secret_values(item))
        target = {item[self.key_field]: self.normalize(item) for item in self.list_items(self.target_hook)}
        self.add_secrets(s for item in target.values() for s in self.secret_values(item))
        wanted = as_name_list(self.names) or sorted(source)
        self.log.info(
            "%s: %d on the source, %d on the target, %d selected; conflict policy %s%s",
            self.resource, len(source), len(target), len(wanted), self.conflict_policy,
            " (dry run: nothing is written)" if summary.dry_run else "",
        )
        for done, key in enumerate(wanted, start=1):
            if key not in source:
                summary.add("failed", self.describe(key), "not found on the source")
                continue
            refused = self.refused_by_target(key)
            if refused and key not in target:
                summary.add("failed", self.describe(key), refused)
                continue
            try:
                outcome, reason = self.migrate_one(key, source[key], target.get(key), summary.dry_run)
            except StarshipError as err:
                outcome, reason = "failed", str(err)
            summary.add(outcome, self.describe(key), reason)
            if done % PROGRESS_EVERY == 0:
                self.log.info("%s: %d of %d done", self.resource, done, len(wanted))

    def refused_by_target(self, key: str) -> str | None:
        """Why the target cannot hold an item with this key, known before asking it (None: it can)."""
        return None

    def cannot_update(self, key: str) -> str | None:
        """Why the target's item with this key cannot be changed (None: it can)."""
        return None

    def migrate_one(
        self, key: str, wanted: dict[str, Any], existing: dict[str, Any] | None, dry_run: bool
    ) -> tuple[str, str | None]:
        if existing is None:
            if not dry_run:
                self.create_on_target(key, wanted)
            return "created", None
        differing = self.differing_fields(wanted, existing)
        differs = "differs on the target: " + ", ".join(differing)
        outcome, reason = resolve_conflict(self.conflict_policy, not differing, differs)
        if outcome != "replace":
            return outcome, reason
        refused = self.cannot_update(key)
        if refused:
            return "failed", f"{differs}; {refused}"
        if not dry_run:
            self.replace_on_target(key, wanted, existing)
        return "updated", None

    def create_on_target(self, key: str, wanted: dict[str, Any]) -> None:
        try:
            self.create_item(self.target_hook, wanted)
        except StarshipConflictError:
            # A retried POST whose first attempt was committed, or a concurrent writer: look again.
            now = {i[self.key_field]: self.normalize(i) for i in self.list_items(self.target_hook)}.get(key)
            if now is None or self.differing_fields(wanted, now):
                raise
            self.log.info("%s was already on the target with the same content", self.describe(key))

    def replace_on_target(self, key: str, wanted: dict[str, Any], existing: dict[str, Any]) -> None:
        """Starship can only insert: delete, insert, and put the old item back if the insert fails."""
        self.delete_item(self.target_hook, key)
        try:
            self.create_item(self.target_hook, wanted)
        except StarshipError:
            try:
                self.create_item(self.target_hook, existing)
            except StarshipError as restore_error:
                self.log.error("Could not restore %s after a failed overwrite: %s", self.describe(key), restore_error)
            else:
                self.log.warning("Overwrite of %s failed; the target's previous version was restored", self.describe(key))
            raise
