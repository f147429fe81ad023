"""Per-task summaries and the readable table built from them.

Every migration operator returns a :class:`Summary` as a small JSON-serialisable dict, pushed to
XCom under the key ``summary`` even when the task fails, so the report can always collect it.
A task that copies more than one resource (task instances and their retry history) carries the
others' summaries in ``parts``; :func:`expand` and :func:`failed_total` see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")
#: Names listed per outcome at most (counts are always complete).
MAX_NAMES = 50


@dataclass
class Summary:
    resource: str
    dag_id: str | None = None
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    skipped_items: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_requests: int = 0  # HTTP exchanges with the source, logins and retries included
    source_api_calls: int = 0  # Starship calls to the source, each counted once
    target_requests: int = 0
    target_writes: int = 0
    seconds: float = 0.0  # wall time of the task's work
    cpu_seconds: float = 0.0  # CPU time of the task process during the work (the client's own share)
    memory_start_mb: float | None = None  # resident memory when the work began (Linux only)
    memory_peak_mb: float | None = None  # the task process's peak resident memory during the work
    parts: list[dict[str, Any]] = field(default_factory=list)  # summaries of further resources of the task

    def add(self, outcome: str, name: str, reason: str | None = None, *, count: int = 1) -> None:
        """Count ``count`` items (1 unless ``name`` stands for a group) and name them once."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        setattr(self, outcome, getattr(self, outcome) + count)
        if outcome == "failed":
            self.failures.append({"item": name, "reason": reason or "unknown"})
        elif outcome == "skipped" and len(self.skipped_items) < MAX_NAMES:
            self.skipped_items.append(name if not reason else f"{name} ({reason})")

    @property
    def total(self) -> int:
        return sum(getattr(self, outcome) for outcome in OUTCOMES)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def expand(data: Any) -> list[dict[str, Any]]:
    """A pushed summary and the summaries of its ``parts``, one per resource; [] for no summary."""
    if not isinstance(data, dict):
        return []
    parts = [p for p in data.get("parts") or [] if isinstance(p, dict)]
    return [{k: v for k, v in data.items() if k != "parts"}, *parts]


def summaries_by_dag(pushed: Any) -> dict[str, dict[str, Any]]:
    """Per DAG id, the summaries that history tasks pushed (a list per batch), from one map index or
    a sequence of them (Airflow returns a lazy sequence, not a list, for several map indexes)."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(pushed, dict):
        if pushed.get("dag_id") is not None:
            found[pushed["dag_id"]] = pushed
    elif isinstance(pushed, Iterable) and not isinstance(pushed, (str, bytes)):
        for value in pushed:
            found.update(summaries_by_dag(value))
    return found


def failed_total(data: dict[str, Any]) -> int:
    """Failed items of a pushed summary, its parts' included."""
    return sum(int(s.get("failed") or 0) for s in expand(data))


def rss_mb(field: str = "VmRSS") -> float | None:
    """This process's resident memory in MB from /proc (``VmHWM``: its peak); None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Start a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def format_table(summaries: list[Summary]) -> str:
    """A fixed-width table: one line per resource (and DAG), then every failure by name."""
    headers = ["resource", "dag", *OUTCOMES]
    rows = [
        [s.resource + (" (dry run)" if s.dry_run else ""), s.dag_id or "-", *(str(getattr(s, o)) for o in OUTCOMES)]
        for s in summaries
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    failures = [(s, f) for s in summaries for f in s.failures]
    if failures:
        lines.append("")
        lines.append("failures:")
        lines += [f"  {s.resource}{'/' + s.dag_id if s.dag_id else ''}: {f['item']}: {f['reason']}" for s, f in failures]
    notes = [(s, n) for s in summaries for n in s.notes]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines += [f"  {s.resource}{'/' + s.dag_id if s.dag_id else ''}: {n}" for s, n in notes]
    return "\n".join(lines)
