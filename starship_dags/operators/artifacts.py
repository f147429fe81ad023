"""XComs and task logs of migrated task instances, per DAG, after its runs and task instances.

The XCom task runs before the log task; the last of the DAG's copy tasks that runs stores its
sync marker (see :meth:`~starship_dags.operators.history.HistoryOperator.store_marker`). Both
tasks get the plan of the DAG's runs task: ``artifact_run_ids`` names the runs whose XComs
and logs must be copied (every run present on the target when there is no sync marker proving
an earlier complete copy, else only the runs written since). They read the source's task
instances of those runs, then copy each finished task instance with a few threads, each with its
own pair of hooks (a hook's HTTP session is not shared between threads; logins come from the
session cache, so threads do not log in again).

**Reading the source.** XComs: Starship ``/xcom`` on Airflow 2 (the stored bytes, base64), the
REST API's ``xcomEntries`` on Airflow 3. Logs: Starship ``/task_log`` (the raw file) where the
source serves it; otherwise (not an Astronomer environment, or Airflow 3) the REST API's log
route, as the source's log reader renders it, without its "log source details" header. The
report says which path was used.

**Writing the target.** XComs: Starship ``/xcom`` on Airflow 2 (bytes verbatim), the REST API on
Airflow 3 (decoded JSON; values that are not JSON are named, not dropped). Logs: Starship
``/task_log`` on Airflow 2; otherwise, and for files the target's webserver refuses as too large,
this task writes the file itself where the target's log reader looks (this DAG runs inside the
target). Logs are spooled to a temporary file in 256 KB pieces: memory stays flat whatever the size.

Idempotent: an XCom or log that is already on the target with the same content is counted as
unchanged; one that differs follows the conflict policy. A log is always replaced whole, never
appended to.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

import requests

from starship_dags.compat import object_storage_path
from starship_dags.exceptions import (
    StarshipConflictError,
    StarshipError,
    StarshipPayloadTooLargeError,
    StarshipServerError,
)
from starship_dags.operators.history import PlannedOperator
from starship_dags.report import Summary
from starship_dags.translate import parse_datetime

if TYPE_CHECKING:  # the hook module imports the HTTP provider (and aiohttp): not at DAG parse time
    from starship_dags.hooks.starship import StarshipHook

#: Task instance states whose XComs and logs are final.
FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 1024 * 1024  # log bodies up to this size stay in memory, larger ones go to disk
DEFAULT_CONCURRENCY = 4
#: Larger logs are not POSTed to an Airflow 2 webserver (its default allowed_payload_size is 1 MiB)
#: but written as files where it reads them; ``extra.max_log_post_bytes`` of the target changes it.
MAX_LOG_POST_BYTES = 1024 * 1024
PROGRESS_EVERY = 500
MAX_NAMED = 50  # items named in one note, at most
IN_FLIGHT_PER_THREAD = 8  # task instances read from the source and waiting, per copying thread
#: The file name template Airflow seeds as its oldest log template (used for runs without one).
LEGACY_LOG_TEMPLATE = "{{ ti.dag_id }}/{{ ti.task_id }}/{{ ts }}/{{ try_number }}.log"
_NOT_JSON = object()


def ti_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    """``(dag_id, run_id, task_id, map_index)``: the arguments of the hook's per-task-instance calls."""
    return row["dag_id"], row["run_id"], row["task_id"], int(row.get("map_index", -1))


def ti_name(row: dict[str, Any]) -> str:
    index = int(row.get("map_index", -1))
    return f"{row['dag_id']}/{row['run_id']}/{row['task_id']}" + (f"[{index}]" if index >= 0 else "")


class _ArtifactOperator(PlannedOperator):
    """Per task instance work with bounded concurrency; children say what one task instance needs."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.concurrency = max(1, int(concurrency))

    # -- what children implement

    def prepare(self, summary: Summary, first: dict[str, Any]) -> bool:
        """Decide source and target paths once, before the threads start; False: nothing can be copied."""
        return True

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook, summary: Summary) -> None:
        raise NotImplementedError

    # -- shared

    def migrate(self, summary: Summary, context: Any) -> None:
        self.copy_all(summary)
        self.store_marker(summary, context)

    def copy_all(self, summary: Summary) -> None:
        """Copy the finished task instances of the planned runs as the source's pages come in: at
        most IN_FLIGHT_PER_THREAD per thread are read and waiting, never the DAG's whole list, so
        memory stays flat however many task instances the DAG has."""
        plan = self.plan or {}
        dag_id = self.dag_to_migrate
        wanted = set(plan.get("artifact_run_ids") or [])
        if plan.get("idle") or not wanted:
            return
        rows = (r for r in self.source_task_instances(dag_id, wanted, plan) if r.get("state") in FINISHED_TI_STATES)
        first = next(rows, None)
        if first is None:
            self.log.info("%s %s: no finished task instances in %d runs", dag_id, self.resource, len(wanted))
            return
        self._lock = threading.Lock()
        self._local = threading.local()
        if not self.prepare(summary, first):
            return
        # each thread's pair of hooks, made here (see StarshipHook.sibling), taking the versions the
        # task's own hooks know (or read, once)
        self._worker_hooks = [tuple(main.sibling(version=main.airflow_version) for main in (self.source_hook, self.target_hook))
                              for _ in range(self.concurrency)]
        self._free_hooks = list(self._worker_hooks)
        done = 0
        waiting: deque[Future[None]] = deque()

        def collect(keep: int) -> None:
            """Wait for the oldest copies until at most ``keep`` wait (and take those already done);
            a copy's unexpected error is raised here."""
            nonlocal done
            while len(waiting) > keep or (waiting and waiting[0].done()):
                waiting.popleft().result()
                done += 1
                if done % PROGRESS_EVERY == 0:
                    self.log.info("%s %s: %d task instances done", dag_id, self.resource, done)

        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.resource) as pool:
                for row in itertools.chain((first,), rows):
                    waiting.append(pool.submit(self._copy_guarded, row, summary))
                    collect(self.concurrency * IN_FLIGHT_PER_THREAD)
                collect(0)
        finally:
            for pair in self._worker_hooks:  # the summary counts every request, the threads' too
                for hook, main in zip(pair, (self.source_hook, self.target_hook)):
                    main.request_count += hook.request_count
                    main.api_calls += hook.api_calls
                    main.write_count += hook.write_count
        self.log.info("%s %s: %d finished task instances done in %d runs", dag_id, self.resource, done, len(wanted))

    def _thread_hooks(self) -> tuple[StarshipHook, StarshipHook]:
        hooks = getattr(self._local, "hooks", None)
        if hooks is None:
            with self._lock:
                hooks = self._local.hooks = self._free_hooks.pop()
        return hooks

    def _copy_guarded(self, row: dict[str, Any], summary: Summary) -> None:
        source, target = self._thread_hooks()
        try:
            self.copy_one(row, source, target, summary)
        except (StarshipError, OSError, requests.RequestException, ValueError) as err:
            self.add(summary, "failed", ti_name(row), str(err))

    def add(self, summary: Summary, outcome: str, name: str, reason: str | None = None) -> None:
        with self._lock:
            summary.add(outcome, name, reason)

    def must_replace(self, summary: Summary, name: str, same: bool, differs: str) -> bool:
        """For an item already on the target: count it (unchanged, skipped, failed) or say it must be replaced."""
        if same:
            self.add(summary, "unchanged", name)
            return False
        if self.conflict_policy == "skip":
            self.add(summary, "skipped", name, differs)
            return False
        if self.conflict_policy == "fail":
            self.add(summary, "failed", name, f"{differs} and conflict policy is 'fail'")
            return False
        return True


# --------------------------------------------------------------------------- XComs


class XComsMigrationOperator(_ArtifactOperator):
    """XComs of every finished task instance of the planned runs (every map index)."""

    resource = "xcoms"

    def prepare(self, summary: Summary, first: dict[str, Any]) -> bool:
        source_major, target_major = self.majors
        summary.notes.append(
            "read through " + ("Starship /xcom" if self.source_hook.serves_xcoms else "the REST API (xcomEntries)")
            + ", written through " + ("Starship /xcom" if target_major < 3 else "the REST API (xcomEntries)")
        )
        return True

    def read_source(self, source: StarshipHook, row: dict[str, Any]) -> dict[str, tuple[bytes, Any]]:
        """``{key: (stored bytes, decoded JSON value or _NOT_JSON)}``."""
        return {key: (raw, _decode(raw)) for key, raw in source.read_xcoms(*ti_key(row)).items()}

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook, summary: Summary) -> None:
        wanted = self.read_source(source, row)
        if not wanted:
            return
        write = self._to_starship if target.airflow_major < 3 else self._to_rest
        write(summary, target, ti_key(row), ti_name(row), wanted)

    def _to_starship(self, summary: Summary, target: StarshipHook, ti: tuple, label: str, wanted: dict) -> None:
        existing = {x["key"]: base64.b64decode(x.get("value") or "") for x in target.get_xcoms(*ti)}
        final, created, updated = dict(existing), [], []
        for key, (raw, _value) in wanted.items():
            name = f"XCom {key!r} of {label}"
            if key not in existing:
                created.append(name)
                final[key] = raw
            elif self.must_replace(summary, name, _same(existing[key], raw), "differs on the target"):
                updated.append(name)
                final[key] = raw
        if not summary.dry_run:
            if updated:  # Starship deletes all XComs of a task instance at once: put every one back
                target.delete_xcoms(*ti)
                keys = list(final)
            else:
                keys = [k for k in final if k not in existing]
            for key in keys:
                self._post_starship(target, ti, key, final[key])
        for name in created:
            self.add(summary, "created", name)
        for name in updated:
            self.add(summary, "updated", name)

    @staticmethod
    def _post_starship(target: StarshipHook, ti: tuple, key: str, raw: bytes) -> None:
        dag_id, run_id, task_id, map_index = ti
        target.create_xcom({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
                            "key": key, "value": base64.b64encode(raw).decode()})

    def _to_rest(self, summary: Summary, target: StarshipHook, ti: tuple, label: str, wanted: dict) -> None:
        existing = set(target.rest_xcom_keys(*ti))
        for key, (_raw, value) in wanted.items():
            name = f"XCom {key!r} of {label}"
            if value is _NOT_JSON:
                self.add(summary, "skipped", name, "its value is not JSON (pickled?): Airflow 3 stores XComs as JSON")
                continue
            if key in existing:
                if not self.must_replace(summary, name, target.rest_xcom_value(*ti, key, decode_text=True) == value,
                                         "differs on the target"):
                    continue
                if target.rest_xcoms_as_text:
                    self.add(summary, "skipped", name, "differs on the target, and Airflow 3.0 and 3.1 can replace "
                             "an XCom only through a REST call that stores its value encoded twice")
                    continue
                outcome = "updated"
            else:
                outcome = "created"
            if not summary.dry_run:
                target.rest_put_xcom(*ti, key, value, replace=outcome == "updated")
            self.add(summary, outcome, name)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _same(a: bytes, b: bytes) -> bool:
    if a == b:
        return True
    da, db = _decode(a), _decode(b)
    return da is not _NOT_JSON and da == db


# --------------------------------------------------------------------------- task logs


class TaskLogsMigrationOperator(_ArtifactOperator):
    """Every try's log of every finished task instance of the planned runs."""

    resource = "task_logs"

    def prepare(self, summary: Summary, first: dict[str, Any]) -> bool:
        source_major, target_major = self.majors
        self._read_via = "rest" if source_major >= 3 else "starship"
        why_rest = "Airflow 3 Starship serves no logs" if source_major >= 3 else None
        ti, first_try = ti_key(first), max(1, int(first.get("try_number") or 1))
        if self._read_via == "starship":
            try:  # one probe decides for the whole task
                _probe(self.source_hook.open_task_log(*ti, first_try))
            except (StarshipConflictError, StarshipServerError) as err:
                self._read_via, why_rest = "rest", f"Starship /task_log refused: {err.detail or err}"
        if self._read_via == "rest":
            try:  # the fallback must work too, else one clear line instead of a failure per log
                _probe(self.source_hook.open_rest_log(*ti, first_try))
            except StarshipError as err:
                summary.notes.append(f"logs unavailable: {why_rest}; the REST API log route failed too: {err}")
                self.log.warning("%s: logs unavailable: %s; REST API: %s", self.dag_to_migrate, why_rest, err)
                return False
        # Airflow 3 lists an earlier try (and serves its log) only from a retry-history row, which a
        # source without retry history (Airflow 2.9 and older) cannot give: such logs are copied as
        # files all the same, and named in a note
        self._unshown = [] if target_major >= 3 and not self.source_hook.keeps_retry_history else None
        self._write_via = "starship" if target_major < 3 else "files"
        if self._write_via == "starship":
            try:
                _probe(self.target_hook.open_task_log(*ti, 1))
            except StarshipConflictError:  # not an Astronomer environment: its Starship has no log folder
                self._write_via = "files"
        self._max_post = int(self.target_hook.extras.get("max_log_post_bytes") or MAX_LOG_POST_BYTES)
        self._template: str | None = None  # chosen when the first file is written (see _reading_template)
        self._run_dates: dict[str, Any] | None = None
        summary.notes.append(
            "read through " + ("Starship /task_log" if self._read_via == "starship"
                               else f"the REST API log route ({why_rest})")
            + ", written " + ("through Starship /task_log" if self._write_via == "starship"
                              else f"as files where the target reads them ({self._base_folder()})")
        )
        return True

    def copy_all(self, summary: Summary) -> None:
        self._unshown = None
        super().copy_all(summary)
        if self._unshown:
            names = sorted(self._unshown)
            more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            summary.notes.append(
                f"{len(names)} earlier tries' logs copied as files, but Airflow 3 shows an earlier try only from its "
                f"retry history, which Airflow {self.source_hook.airflow_version} does not keep (no retry history "
                f"on the source): {', '.join(names[:MAX_NAMED])}{more}")

    # -- reading

    def open_source(self, source: StarshipHook, row: dict[str, Any], try_number: int) -> Iterator[bytes] | None:
        if self._read_via == "starship":
            return source.open_task_log(*ti_key(row), try_number)
        return source.open_rest_log(*ti_key(row), try_number)

    def copy_one(self, row: dict[str, Any], source: StarshipHook, target: StarshipHook, summary: Summary) -> None:
        for try_number in range(1, int(row.get("try_number") or 0) + 1):
            name = f"log of {ti_name(row)} try {try_number}"
            body = self.open_source(source, row, try_number)
            if body is None:
                self.add(summary, "skipped", name, "no log on the source")
                continue
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
                blank = True  # a REST log route answers an empty rendering for a missing file
                for chunk in body:
                    spool.write(chunk)
                    blank = blank and not chunk.strip()
                if blank:
                    self.add(summary, "skipped", name, "the source's log is empty")
                    continue
                self.write_one(summary, target, row, try_number, name, spool)
            if self._unshown is not None and try_number < int(row.get("try_number") or 0):
                with self._lock:
                    self._unshown.append(name)

    # -- writing

    def write_one(self, summary: Summary, target: StarshipHook, row: dict[str, Any], try_number: int, name: str,
                  spool: IO[bytes]) -> None:
        ti = ti_key(row)
        path = None
        if self._write_via == "files":
            path = self.local_path(target, row, try_number)
            if path is None:
                self.add(summary, "skipped", name, "the target reads logs of migrated runs from a file name without "
                         "a map index (its oldest log template); mapped task instances would overwrite each other")
                return
            existing = _file_chunks(path) if path.exists() else None
        else:
            existing = target.open_task_log(*ti, try_number)
        if existing is not None and not self.must_replace(
                summary, name, _same_stream(existing, spool), "a different log is on the target"):
            return
        outcome = "created" if existing is None else "updated"
        if summary.dry_run:
            self.add(summary, outcome, name)
            return
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        if path is None and size > self._max_post:
            # Airflow 2's webserver refuses larger bodies: write the file where the target reads it.
            path = self.local_path(target, row, try_number)
        if path is None:
            try:
                target.put_task_log(*ti, try_number, spool)
                self.add(summary, outcome, name)
                return
            except (StarshipPayloadTooLargeError, StarshipConflictError) as err:
                # Too large for the webserver, or not an Astronomer environment: write it ourselves.
                self.log.info("%s: Starship refused it (%s); writing the file directly", name, err.status)
                path = self.local_path(target, row, try_number)
                if path is None:
                    raise
        _write_file(path, spool)
        self.add(summary, outcome, name)

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

        override = self.target_hook.extras.get("log_filename_template")
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
        with self._lock:
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


__all__ = ["TaskLogsMigrationOperator", "XComsMigrationOperator"]
