"""The supported Airflow versions: which sources migrate into which targets, and each pair's limits.

One declaration for the whole project: ``start`` refuses a pair outside it within seconds
(:func:`check_pair`), the README's table is :func:`markdown_table`'s output (a unit test keeps
them equal), and the integration tests start one real server per minor listed here. A pair is
supported when a real-server test migrates it: see ``tests/integration/test_matrix.py``.
"""

from __future__ import annotations

import re

#: The astronomer-starship release every server of the matrix runs.
STARSHIP_VERSION = "2.10.1"
SOURCES = ("2.7", "2.8", "2.9", "2.10", "2.11", "3.0", "3.1", "3.2", "3.3")
TARGETS = ("2.10", "2.11", "3.0", "3.1", "3.2", "3.3")

#: Limits of a pair, each a rule: (source minors, target minors, what the user meets). A pair
#: without a rule migrates every resource in full.
_AF2_SOURCES = tuple(v for v in SOURCES if v.startswith("2."))
_AF3 = ("3.0", "3.1", "3.2", "3.3")
_AF2_TARGETS = tuple(v for v in TARGETS if v.startswith("2."))
LIMITS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("2.7",), TARGETS,
     "XComs: read through the REST API (Starship serves them from 2.8 on), which renders a value as Python "
     "text: a text value that reads as a number, list or dict arrives as that"),
    (("2.7", "2.8", "2.9"), _AF3,
     "logs of earlier tries of a retried task: copied as files and named in the report, but not shown by the "
     "target (Airflow 3 lists an earlier try only from retry history, which 2.9 and older do not keep)"),
    (SOURCES, ("3.2", "3.3"),
     "logs of mapped task instances: named as skipped where the target's database was made by Airflow 3.2 or "
     "later (Starship stores runs without their log template, and such a target then reads their logs by "
     "Airflow's pre-2.3 file name, which has no map index)"),
    (SOURCES, ("3.0", "3.1"),
     "XComs: stored as Airflow 3.0 and 3.1 store an XCom created through their REST API, as the JSON text of "
     "its value (the UI shows that text, and a task pulling it gets the text); one that differs on the target "
     "is named as skipped under overwrite (their API cannot replace it faithfully)"),
    (SOURCES, _AF2_TARGETS,
     "logs of mapped task instances: copied, but Airflow 2's log view cannot show them (it needs the run's "
     "task_map rows, which Starship does not copy)"),
)


class UnsupportedVersionError(ValueError):
    """A source or target Airflow outside the tested matrix."""


def minor(version: str) -> str:
    """``"2.9.3"`` -> ``"2.9"``; also accepts ``"3.1.0rc1"`` or ``"2.10.5+astro.1"``."""
    match = re.match(r"\s*(\d+)\.(\d+)", str(version or ""))
    if not match:
        raise UnsupportedVersionError(f"not an Airflow version: {version!r}")
    return f"{int(match.group(1))}.{int(match.group(2))}"


def supported(source: str, target: str) -> bool:
    """Whether this source minor migrates into this target minor (Airflow 3 never into Airflow 2)."""
    if source not in SOURCES or target not in TARGETS:
        return False
    return not (source.startswith("3.") and target.startswith("2."))


def limits(source: str, target: str) -> list[str]:
    return [text for sources, targets, text in LIMITS if source in sources and target in targets]


def check_pair(source_version: str, target_version: str) -> list[str]:
    """Raise :class:`UnsupportedVersionError` naming both versions unless the pair is supported;
    else return the pair's limits (for the task log)."""
    source, target = minor(source_version), minor(target_version)
    if not supported(source, target):
        why = []
        if source not in SOURCES:
            why.append(f"sources: Airflow {', '.join(SOURCES)}")
        if target not in TARGETS:
            why.append(f"targets: Airflow {', '.join(TARGETS)}")
        if not why:
            why.append("an Airflow 3 source migrates only into an Airflow 3 target")
        raise UnsupportedVersionError(
            f"migrating from Airflow {source_version} into Airflow {target_version} is not supported "
            f"({'; '.join(why)}; all with astronomer-starship {STARSHIP_VERSION}). See the README's version table."
        )
    return limits(source, target)


def markdown_table() -> str:
    """The README's table: one row per source, one column per target; ✔ full, ◐ with limits
    (numbered below the table), blank where unsupported."""
    notes: list[str] = []
    lines = ["| source \\ target | " + " | ".join(TARGETS) + " |", "|---|" + "---|" * len(TARGETS)]
    for source in SOURCES:
        cells = []
        for target in TARGETS:
            if not supported(source, target):
                cells.append("")
                continue
            marks = []
            for text in limits(source, target):
                if text not in notes:
                    notes.append(text)
                marks.append(str(notes.index(text) + 1))
            cells.append("◐ " + ",".join(marks) if marks else "✔")
        lines.append(f"| **{source}** | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"{number}. {text}" for number, text in enumerate(notes, start=1))
    return "\n".join(lines)


__all__ = ["SOURCES", "STARSHIP_VERSION", "TARGETS", "UnsupportedVersionError", "check_pair", "limits",
           "markdown_table", "minor", "supported"]


if __name__ == "__main__":  # python -m starship_dags.versions: the README's table
    print(markdown_table())
