"""Every try's log of the migrated task instances, streamed, never held whole.

**Reading the source.** Starship ``/task_log`` (the raw file) where the source serves it (an
Astronomer environment); otherwise (or on Airflow 3) the REST API's log route, as the source's log
reader renders it, without its "log source details" group. One probe decides for the whole task,
and the report says which path was used; a source that serves neither gets one note per DAG.
**Writing the target.** Starship ``/task_log`` on an Airflow 2 target that serves it; otherwise, and
for logs larger than the webserver accepts, this task writes the file itself where the target's log
reader looks (this DAG runs inside the target), under the file name the target reads migrated runs
by (see ``_reading_template``). Logs are spooled to a temporary file in 256 KB pieces.

A log already on the target with the same content is unchanged; one that differs follows the
conflict policy, and is replaced whole, never appended to.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

from starship_dags.compat import object_storage_path
from starship_dags.exceptions import (
    StarshipConflictError,
    StarshipError,
    StarshipPayloadTooLargeError,
    StarshipServerError,
)
from starship_dags.operators.copier import Copier, ti_key, ti_name
from starship_dags.translate import parse_datetime

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 1024 * 1024  # log bodies up to this size stay in memory, larger ones go to disk
#: Larger logs are not POSTed to an Airflow 2 webserver (its default allowed_payload_size is 1 MiB)
#: but written as files where it reads them; ``extra.max_log_post_bytes`` of the target changes it.
MAX_LOG_POST_BYTES = 1024 * 1024
MAX_NAMED = 50  # items named in one note, at most
#: The file name template Airflow seeds as its oldest log template (used for runs without one).
LEGACY_LOG_TEMPLATE = "{{ ti.dag_id }}/{{ ti.task_id }}/{{ ts }}/{{ try_number }}.log"


#: States of a task instance whose last try may never have run (then it has no log).
NEVER_RAN_STATES = frozenset({"skipped", "upstream_failed", "removed"})


def tries_with_a_log(row: dict[str, Any]) -> int:
    """How many of a task instance's tries can have a log: every earlier try (each ran and was retried),
    and the last one if it ran: it reached a worker (a hostname), or it has a start date and a state
    that a task gets by running (skipped, upstream-failed and removed ones are set so without running)."""
    tries = int(row.get("try_number") or 0)
    ran = bool(row.get("hostname")) or (row.get("state") not in NEVER_RAN_STATES and bool(row.get("start_date")))
    return tries if ran else max(tries - 1, 0)


class LogCopier(Copier):
    """Every try's log of every finished task instance of the planned runs."""

    resource = "task_logs"

    def jobs(self) -> Iterator[dict[str, Any]]:
        self._unshown: list[str] | None = None
        return self.finished_task_instances()

    def prepare(self, first: dict[str, Any]) -> bool:
        summary = self.summary
        source_major, target_major = self.op.majors
        self._read_via = "rest" if source_major >= 3 else "starship"
        why_rest = "Airflow 3 Starship serves no logs" if source_major >= 3 else None
        ti, first_try = ti_key(first), max(1, int(first.get("try_number") or 1))
        if self._read_via == "starship":
            try:  # one probe decides for the whole task
                _probe(self.op.source_hook.open_task_log(*ti, first_try))
            except (StarshipConflictError, StarshipServerError) as err:
                self._read_via, why_rest = "rest", f"Starship /task_log refused: {err.detail or err}"
        if self._read_via == "rest":
            try:  # the fallback must work too, else one clear line instead of a failure per log
                _probe(self.op.source_hook.open_rest_log(*ti, first_try))
            except StarshipError as err:
                summary.notes.append(f"logs unavailable: {why_rest}; the REST API log route failed too: {err}")
                self.log.warning("%s: logs unavailable: %s; REST API: %s", self.op.dag_to_migrate, why_rest, err)
                return False
        # Airflow 3 lists an earlier try (and serves its log) only from a retry-history row, which a
        # source without retry history (Airflow 2.9 and older) cannot give: such logs are copied as
        # files all the same, and named in a note
        self._unshown = [] if target_major >= 3 and not self.op.source_hook.keeps_retry_history else None
        self._existing_runs = set(self.op.plan.artifact_existing_run_ids)
        self._write_via = "starship" if target_major < 3 else "files"
        if self._write_via == "starship":
            try:
                _probe(self.op.target_hook.open_task_log(*ti, 1))
            except StarshipConflictError:  # not an Astronomer environment: its Starship has no log folder
                self._write_via = "files"
        self._max_post = int(self.op.target_hook.extras.get("max_log_post_bytes") or MAX_LOG_POST_BYTES)
        self._template: str | None = None  # chosen when the first file is written (see _reading_template)
        self._run_dates: dict[str, Any] | None = None
        summary.notes.append(
            "read through " + ("Starship /task_log" if self._read_via == "starship"
                               else f"the REST API log route ({why_rest})")
            + ", written " + ("through Starship /task_log" if self._write_via == "starship"
                              else f"as files where the target reads them ({self._base_folder()})")
        )
        return True

    def finish(self) -> None:
        if self._unshown:
            names = sorted(self._unshown)
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            self.summary.notes.append(
                f"{len(names)} earlier tries' logs copied as files, but Airflow 3 shows an earlier try only from its "
                f"retry history, which Airflow {self.op.source_hook.airflow_version} does not keep (no retry history "
                f"on the source): {', '.join(names[:MAX_NAMED])}{more}")

    # -- reading

    def open_source(self, source: StarshipHook, row: dict[str, Any], try_number: int) -> Iterator[bytes] | None:
        if self._read_via == "starship":
            return source.open_task_log(*ti_key(row), try_number)
        return source.open_rest_log(*ti_key(row), try_number)

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook) -> None:
        for try_number in range(1, tries_with_a_log(row) + 1):
            name = f"log of {ti_name(row)} try {try_number}"
            body = self.open_source(source, row, try_number)
            if body is None:
                self.add("skipped", name, "no log on the source")
                continue
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                blank = True  # a REST log route answers an empty rendering for a missing file
                for chunk in body:
                    spool.write(chunk)
                    blank = blank and not chunk.strip()
                if blank:
                    self.add("skipped", name, "the source's log is empty")
                    continue
                self.write_one(target, row, try_number, name, spool)
            if self._unshown is not None and try_number < int(row.get("try_number") or 0):
                with self.lock:
                    self._unshown.append(name)

    # -- writing

    def write_one(self, target: StarshipHook, row: dict[str, Any], try_number: int, name: str, spool: IO[bytes]) -> None:
        ti = ti_key(row)
        path = None
        if self._write_via == "files":
            path = self.local_path(target, row, try_number)
            if path is None:
                self.add("skipped", name, "the target reads logs of migrated runs from a file name without "
                         "a map index (its oldest log template); mapped task instances would overwrite each other")
                return
            existing = _file_chunks(path) if path.exists() else None
        elif row["run_id"] in self._existing_runs:
            existing = target.open_task_log(*ti, try_number)
        else:  # a run written by this migration run: its logs cannot be on the target (a stale file is replaced)
            existing = None
        if existing is not None and not self.must_replace(
                name, _same_stream(existing, spool), "a different log is on the target"):
            return
        outcome = "created" if existing is None else "updated"
        if self.summary.dry_run:
            self.add(outcome, name)
            return
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        if path is None and size > self._max_post:
            # Airflow 2's webserver refuses larger bodies: write the file where the target reads it.
            path = self.local_path(target, row, try_number)
        if path is None:
            try:
                target.put_task_log(*ti, try_number, spool)
                self.add(outcome, name)
                return
            except (StarshipPayloadTooLargeError, StarshipConflictError) as err:
                # Too large for the webserver, or not an Astronomer environment: write it ourselves.
                self.log.info("%s: Starship refused it (%s); writing the file directly", name, err.status)
                path = self.local_path(target, row, try_number)
                if path is None:
                    raise
        _write_file(path, spool)
        self.add(outcome, name)

    def _base_folder(self) -> str:
        from airflow.configuration import conf

        if conf.getboolean("logging", "remote_logging", fallback=False) and conf.get("logging", "remote_base_log_folder", fallback=""):
            return conf.get("logging", "remote_base_log_folder")
        return conf.get("logging", "base_log_folder")

    def _reading_template(self, target: StarshipHook, row: dict[str, Any]) -> str:
        """The file name template the target's log reader uses for migrated runs.

        ``extra.log_filename_template`` of the target connection wins. Starship stores runs without
        their log template, so the target reads them with its *oldest* one: the configured template
        on a database made by Airflow 2.3 to 3.1, but Airflow's pre-2.3 one on a database made by 3.2
        or later (which seeds it first when the configured template is the default). Which one it
        is, the target's own log route tells: asked for this task instance's log, it names the file
        it looks for (found, or asked of the worker's log server)."""
        from airflow.configuration import conf

        override = self.op.target_hook.extras.get("log_filename_template")
        if override:
            return str(override)
        configured = conf.get("logging", "log_filename_template")
        candidates = [configured] + ([LEGACY_LOG_TEMPLATE] if configured != LEGACY_LOG_TEMPLATE else [])
        try:
            said = target.rest_log_sources(*ti_key(row), max(1, int(row.get("try_number") or 1)))
        except StarshipError as err:
            said = ""
            self.log.warning("Could not ask the target which log file name it reads (%s)", err)
        for template in candidates:
            if self._relative(template, row, max(1, int(row.get("try_number") or 1)), target) in said:
                self.log.info("The target reads logs of migrated runs with the file name template %s", template)
                return template
        default = configured == conf.get_default_value("logging", "log_filename_template")
        chosen = LEGACY_LOG_TEMPLATE if target.airflow_major >= 3 and default else configured
        self.log.warning("The target's log route did not name the file it reads; assuming the template %s (set "
                         "extra.log_filename_template on the target connection if logs do not show)", chosen)
        return chosen

    def _relative(self, template: str, row: dict[str, Any], try_number: int, target: StarshipHook) -> str:
        """The log's path under the log folder, by ``template``."""
        import jinja2

        if self._run_dates is None:  # ``ts`` of a run: its logical date (Airflow 3: or run_after)
            self._run_dates = {
                r["run_id"]: parse_datetime(r.get("logical_date") or r.get("execution_date") or r.get("run_after"))
                for r in target.iter_dag_runs(row["dag_id"])
            }
        when = self._run_dates.get(row["run_id"])
        ti = SimpleNamespace(dag_id=row["dag_id"], run_id=row["run_id"], task_id=row["task_id"],
                             map_index=int(row.get("map_index", -1)), try_number=try_number)
        if "{{" in template or "{%" in template:
            return jinja2.Template(template).render(ti=ti, ts=when.isoformat() if when else "", try_number=try_number)
        return template.format(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, try_number=try_number,
                               logical_date=when.isoformat() if when else "", data_interval_start="",
                               data_interval_end="")

    def local_path(self, target: StarshipHook, row: dict[str, Any], try_number: int) -> Path | Any | None:
        """Where the target reads this log; None when the template cannot tell map indexes apart."""
        with self.lock:
            if self._template is None:
                self._template = self._reading_template(target, row)
            if int(row.get("map_index", -1)) >= 0 and "map_index" not in self._template:
                return None
            relative = self._relative(self._template, row, try_number, target)
        base = self._base_folder()
        if "://" in base:  # remote logging: Airflow's object storage
            from airflow.configuration import conf

            return object_storage_path(base.rstrip("/") + "/" + relative, conf.get("logging", "remote_log_conn_id") or None)
        return Path(base, relative)


def _probe(stream: Iterator[bytes] | None) -> None:
    """A route answered (or said 404): that is all a probe needs; release the connection."""
    if stream is not None:
        stream.close()


def _file_chunks(path: Any) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _same_stream(existing: Iterator[bytes], spool: IO[bytes]) -> bool:
    """Compare a stream with the spooled file piece by piece (never both whole in memory)."""
    spool.seek(0)
    for chunk in existing:
        if spool.read(len(chunk)) != chunk:
            close = getattr(existing, "close", None)
            if close:  # a generator over an HTTP answer: release the connection
                close()
            return False
    return spool.read(1) == b""


def _write_file(path: Any, spool: IO[bytes]) -> None:
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".starship-partial")
        with partial.open("wb") as out:
            while chunk := spool.read(CHUNK):
                out.write(chunk)
        os.replace(partial, path)  # readers never see half a log
        return
    with path.open("wb") as out:
        while chunk := spool.read(CHUNK):
            out.write(chunk)


__all__ = ["LogCopier", "tries_with_a_log"]
