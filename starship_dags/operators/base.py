"""Shared mechanics of every migration operator.

:class:`MigrationOperator` owns the two hooks (built lazily, so DAG files parse offline), the
conflict policy, dry run, and the summary: it is pushed to XCom under ``summary`` whether the
task succeeds or fails, logged as a table, and the task fails at the end when any item failed.

The conflict policy is decided in one place for every resource: :func:`resolve_conflict`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from starship_dags.compat import AirflowException

from starship_dags.compat import AirflowSkipException, BaseOperator, mask_secret
from starship_dags.report import Summary, expand, format_table, reset_peak_rss, rss_mb

if TYPE_CHECKING:
    from starship_dags.hooks.starship import StarshipHook

CONFLICT_POLICIES = ("skip", "overwrite", "fail")
PROGRESS_EVERY = 200


def resolve_conflict(policy: str, same: bool, differs: str) -> tuple[str, str | None]:
    """What to do with an item the target already has, by the conflict policy: the outcome to count
    (``unchanged``, ``skipped`` or ``failed``, with the reason), or ``replace``. The one place the
    policy is decided, for every resource."""
    if same:
        return "unchanged", None
    if policy == "skip":
        return "skipped", differs
    if policy == "fail":
        return "failed", f"{differs} and conflict policy is 'fail'"
    return "replace", None


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def as_name_list(value: Any) -> list[str]:
    """Names from a list, a JSON list or a comma/newline separated string; empty means all."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            value = [part for chunk in text.splitlines() for part in chunk.split(",")]
    if not isinstance(value, (list, tuple, set)):
        raise ValueError(f"expected a list of names, got {type(value).__name__}")
    return [str(v).strip() for v in value if str(v).strip()]


def starship_hook(conn_id: str) -> StarshipHook:
    """A hook for this connection. The hook module imports the HTTP provider, which pulls in
    aiohttp: imported here, when a task runs, it stays out of every parse of the DAG files."""
    from starship_dags.hooks.starship import StarshipHook

    return StarshipHook(conn_id)


class StarshipOperator(BaseOperator):
    """Anything that talks to the source and the target: the two hooks, built lazily."""

    template_fields: tuple[str, ...] = ("source_conn_id", "target_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        source_conn_id: str = "starship_source",
        target_conn_id: str = "starship_target",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id

    @cached_property
    def source_hook(self) -> StarshipHook:
        return starship_hook(self.source_conn_id)

    @cached_property
    def target_hook(self) -> StarshipHook:
        return starship_hook(self.target_conn_id)

    def add_secrets(self, values: Iterable[Any]) -> None:
        """Keep these values out of task logs and out of error messages of both hooks."""
        values = [v for v in values if isinstance(v, str) and v]
        for value in values:
            mask_secret(value)
        self.source_hook.add_secrets(values)
        self.target_hook.add_secrets(values)


class MigrationOperator(StarshipOperator):
    """Base of all migration operators: policy, dry run and the summary contract."""

    resource = "resource"
    template_fields: tuple[str, ...] = (*StarshipOperator.template_fields, "conflict_policy", "dry_run", "enabled")

    def __init__(
        self,
        *,
        conflict_policy: str = "skip",
        dry_run: bool | str = False,
        enabled: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conflict_policy = conflict_policy
        self.dry_run = dry_run
        self.enabled = enabled
        self.parts: list[Summary] = []  # summaries of further resources this task copies (see part())
        self.last_summary: dict[str, Any] | None = None  # the latest summary made, as pushed

    def execute(self, context: Any) -> dict[str, Any]:
        self.begin()
        try:
            summary, error = self.summarized(context)
        finally:  # also when the task is killed or times out: the report shows what was done
            context["ti"].xcom_push(key="summary", value=self.last_summary)
        if error is not None:
            raise error
        self.raise_if_failed([summary])
        return summary

    def begin(self) -> None:
        """Skip the task when its resource is not selected; check the conflict policy."""
        if not as_bool(self.enabled):
            raise AirflowSkipException(f"{self.resource} not selected for this run")
        policy = str(self.conflict_policy).strip().lower()
        if policy not in CONFLICT_POLICIES:
            raise ValueError(f"conflict_policy must be one of {', '.join(CONFLICT_POLICIES)}; got {self.conflict_policy!r}")
        self.conflict_policy = policy

    def summarized(self, context: Any) -> tuple[dict[str, Any], Exception | None]:
        """Run :meth:`migrate` and return its summary (with its parts) and the error that ended it, if
        any. The summary is logged, and kept in ``last_summary`` even when the task is killed."""
        summary = Summary(resource=self.resource, dag_id=self.summary_dag_id(), dry_run=as_bool(self.dry_run))
        self.parts = []
        summary.memory_start_mb = rss_mb() if reset_peak_rss() else None
        error: Exception | None = None
        try:
            with self._measured(summary):
                self.migrate(summary, context)
        except Exception as err:
            summary.add("failed", f"{self.resource} task", str(err))
            error = err
        finally:
            if summary.memory_start_mb is not None:
                summary.memory_peak_mb = rss_mb("VmHWM")
                self.log.info("%s memory: %.1f MB at the start, peak %.1f MB (+%.1f MB), %.1f s (%.1f s of CPU)",
                              self.resource, summary.memory_start_mb, summary.memory_peak_mb,
                              summary.memory_peak_mb - summary.memory_start_mb, summary.seconds, summary.cpu_seconds)
            # each summary counts its own time and requests: the task's, less those of its parts
            for name in ("seconds", "cpu_seconds", *self._request_counts()):
                setattr(summary, name, round(getattr(summary, name) - sum(getattr(part, name) for part in self.parts), 3))
            summary.parts = [part.as_dict() for part in self.parts]
            self.last_summary = summary.as_dict()
            self.log.info("Summary of %s:\n%s", self.resource + (f" ({summary.dag_id})" if summary.dag_id else ""),
                          format_table([summary, *self.parts]))
        return self.last_summary, error

    def raise_if_failed(self, summaries: list[dict[str, Any]]) -> None:
        """Fail the task, naming the failed items, when any of these pushed summaries holds a failure."""
        flat = [Summary.from_dict(s) for pushed in summaries for s in expand(pushed)]
        failed = sum(s.failed for s in flat)
        if failed:
            items = [f["item"] for s in flat for f in s.failures]
            more = f" and {failed - 20} more" if failed > 20 else ""
            what = " and ".join(dict.fromkeys(s.resource for s in flat if s.failed))
            raise AirflowException(f"{what}: {failed} item(s) failed: {', '.join(items[:20])}{more} (reasons above)")

    def _request_counts(self) -> dict[str, int]:
        """The hooks' request counters so far, as the summary's fields (hooks not built: none)."""
        counts = {}
        if "source_hook" in self.__dict__:
            counts["source_requests"] = self.source_hook.request_count
            counts["source_api_calls"] = self.source_hook.api_calls
        if "target_hook" in self.__dict__:
            counts["target_requests"] = self.target_hook.request_count
            counts["target_writes"] = self.target_hook.write_count
        return counts

    @contextmanager
    def part(self, resource: str) -> Iterator[Summary]:
        """The summary of a further resource this task copies inside the ``with`` block; it travels in
        the main summary's ``parts`` and counts the requests made in the block."""
        part = Summary(resource=resource, dag_id=self.summary_dag_id(), dry_run=as_bool(self.dry_run))
        self.parts.append(part)
        with self._measured(part):
            yield part

    @contextmanager
    def _measured(self, summary: Summary) -> Iterator[None]:
        """Record in ``summary`` the wall time, the CPU time and the requests of the ``with`` block."""
        before = self._request_counts()
        started, cpu_started = time.monotonic(), time.process_time()
        try:
            yield
        finally:
            summary.seconds = round(time.monotonic() - started, 3)
            summary.cpu_seconds = round(time.process_time() - cpu_started, 3)
            for name, value in self._request_counts().items():
                setattr(summary, name, value - before.get(name, 0))

    def summary_dag_id(self) -> str | None:
        return None

    def migrate(self, summary: Summary, context: Any) -> None:
        raise NotImplementedError
