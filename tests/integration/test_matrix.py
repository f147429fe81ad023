"""The version matrix (``starship_dags.versions``), one real source and target server per minor.

Cells: every source minor into a 3.3 target, every Airflow 2 source minor into a 2.11 target, and
a 2.11 source into every target minor. Each source's history is made by its own scheduler
(:mod:`tests.integration.scheduled`: a mapped task, a retried task, a failed run with a ``conf``,
XComs, a log per try) with notes on a run and a mapped task instance, beside pools, variables (a
secret among them) and connections. Each cell migrates every resource into a target emptied of
them, checks the target field by field (settings, runs, task instances, retry history, XComs,
notes, every try's log as the target's own log route serves it), that no secret reached a log, and
that an idle rerun writes nothing.

Airflow 2 sources serve logs as a non-Astronomer deployment does (through the REST API: Starship's
``/task_log`` needs ``ASTRONOMER_ENVIRONMENT``); Airflow 2 targets as Astro does (through Starship).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import pytest

from starship_dags.versions import SOURCES, TARGETS, supported
from tests.integration import corpus, rig, scheduled
from tests.integration.history_seed import REAL_DAGS
from tests.integration.parity import assert_no_duplicates_or_orphans, assert_parity, reset_history, snapshot
from tests.integration.test_artifacts import (
    NO_MAP_INDEX,
    artifact_totals,
    log_lines,
    logs_named,
    summaries_of,
    target_xcom,
)
from tests.integration.test_keyed_resources import assert_same
from tests.integration.test_notes import note_of, set_note

CELLS = sorted(
    {(source, "3.3") for source in SOURCES}
    | {(source, "2.11") for source in SOURCES if source.startswith("2.")}
    | {("2.11", target) for target in TARGETS},
    key=lambda cell: (SOURCES.index(cell[0]), TARGETS.index(cell[1])),
)
assert all(supported(*cell) for cell in CELLS)
UNSUPPORTED = ("3.3", "2.11")  # an Airflow 3 source into an Airflow 2 target: refused by start
assert not supported(*UNSUPPORTED)
NEEDED = [*CELLS, UNSUPPORTED]  # in the order the tests below use them
EVERYTHING = {"resources": ["pools", "variables", "connections", "dag_history", "xcoms", "task_logs", "notes"],
              "dag_ids": list(REAL_DAGS), "validate": True, "conflict_policy": "overwrite"}
#: Sources whose Starship has no retry-history table (Airflow 2.9 and older keep none).
WITHOUT_RETRY_HISTORY = ("2.7", "2.8", "2.9")
EARLIER_TRY_UNSHOWN = "no retry history"
#: Targets whose fresh database reads migrated runs' logs by Airflow's pre-2.3 file name (no map index).
MAPPED_LOGS_SKIPPED = ("3.2", "3.3")


class Servers:
    """Servers by (role, minor), started on first use and stopped once no cell left needs them."""

    def __init__(self, envs) -> None:
        self.envs = envs
        self.up: dict[tuple[str, str], rig.AirflowServer] = {}

    def get(self, role: str, version: str, remaining: list[tuple[str, str]]) -> rig.AirflowServer:
        needed = {("source", s) for s, _ in remaining} | {("target", t) for _, t in remaining}
        for key in [k for k in self.up if k not in needed]:
            self.up.pop(key).stop()
        if (role, version) not in self.up:
            self.up[(role, version)] = (self._source if role == "source" else self._target)(version)
        return self.up[(role, version)]

    def _source(self, version: str) -> rig.AirflowServer:
        server = rig.AirflowServer(f"msrc{version}", self.envs[version]).start()
        try:
            scheduled.make(server)
            for key, note in source_notes(server).items():
                set_note(server, note, *key)
            rig.seed(server, corpus.spec())
        except BaseException:
            server.stop()
            raise
        return server

    def _target(self, version: str) -> rig.AirflowServer:
        server = rig.AirflowServer(f"mtgt{version}", self.envs[version], dags=[rig.MIGRATION_DAG, rig.HISTORY_DAGS],
                                   astro_logs=version.startswith("2.")).start()
        server.cli("dags", "reserialize")
        return server

    def stop(self) -> None:
        for server in self.up.values():
            server.stop()
        self.up.clear()


@pytest.fixture(scope="module")
def servers(envs) -> Iterator[Servers]:
    pool = Servers(envs)
    yield pool
    pool.stop()


def source_notes(server: rig.AirflowServer) -> dict[tuple, str]:
    """Notes a user leaves in the source's UI: on a run and on a mapped task instance of it."""
    run_id = min(row[0] for row in server.sql("SELECT run_id FROM task_instance WHERE dag_id = 'hist_mapped' "
                                              "AND task_id = 'square' AND map_index = 1"))
    return {("hist_mapped", run_id): "re-ran after the vendor outage ✓",
            ("hist_mapped", run_id, "square", 1): "map index 1: known bad data, ignore"}


def empty_target(target: rig.AirflowServer) -> None:
    reset_history(target, REAL_DAGS)
    rig.reset_keyed_resources(target)
    for dag_id in REAL_DAGS:  # the log files an earlier cell wrote (Airflow 2's and Airflow 3's file names)
        for folder in (target.home / "logs" / f"dag_id={dag_id}", target.home / "logs" / dag_id):
            shutil.rmtree(folder, ignore_errors=True)


def stored_xcoms(server: rig.AirflowServer) -> dict[tuple, object]:
    """Every XCom of the scheduler's DAGs, as the server's database holds its value."""
    rows = server.sql("SELECT dag_id, run_id, task_id, map_index, key, value FROM xcom WHERE dag_id = ANY(%s)",
                      (list(REAL_DAGS),))
    return {tuple(row[:5]): rig.xcom_json(row[5]) for row in rows}


def tries(server: rig.AirflowServer) -> list[tuple]:
    rows = server.sql("SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance "
                      "WHERE dag_id = ANY(%s) AND state IN ('success', 'failed') AND try_number > 0",
                      (list(REAL_DAGS),))
    return [(*row[:4], number) for row in rows for number in range(1, row[4] + 1)]


def log_name(dag_id, run_id, task_id, map_index, try_number) -> str:
    return f"log of {dag_id}/{run_id}/{task_id}" + (f"[{map_index}]" if map_index >= 0 else "") + f" try {try_number}"


@pytest.mark.parametrize("cell", CELLS, ids=[f"{s}-to-{t}" for s, t in CELLS])
def test_cell(servers, cell):
    source_version, target_version = cell
    remaining = NEEDED[NEEDED.index(cell):]
    source = servers.get("source", source_version, remaining)
    target = servers.get("target", target_version, remaining)
    empty_target(target)

    first = rig.run_migration_dag(target, source, EVERYTHING)
    assert first.run_state == "success", first.explain()
    assert_no_secret(first.output + rig.task_log_text(target))

    assert_same(snapshot(source), snapshot(target))
    assert_parity(source, target, dags=REAL_DAGS)
    assert_no_duplicates_or_orphans(source, target, dags=REAL_DAGS)

    xcoms = stored_xcoms(source)
    assert len(xcoms) >= 15 and any(key[3] >= 0 for key in xcoms)  # mapped ones among them
    copied = {key: target_xcom(target, key) for key in xcoms}
    if target_version in ("3.0", "3.1"):  # their REST API stores a created XCom as its JSON text
        assert all(isinstance(value, str) for value in copied.values()), copied
        copied = {key: json.loads(value) for key, value in copied.items()}
    assert copied == xcoms
    assert artifact_totals(first, "xcoms").get("created") == len(xcoms)
    notes = source_notes(source)
    assert {key: note_of(target, *key) for key in notes} == notes
    assert artifact_totals(first, "notes").get("created") == len(notes)

    all_tries = tries(source)
    assert any(t[4] == 2 for t in all_tries)  # the retried task's two tries
    mapped_skipped = logs_named(first, NO_MAP_INDEX)
    unshown = " ".join(n for s in summaries_of(first, "task_logs") for n in s["notes"] if EARLIER_TRY_UNSHOWN in n)
    compared = 0
    for ti in all_tries:
        name = log_name(*ti)
        dag_id, run_id, task_id, map_index, try_number = ti
        if map_index >= 0 and target.major == 2:  # see the limits in starship_dags.versions
            continue  # Airflow 2's log view cannot show them (no task_map rows)
        if map_index >= 0 and target_version in MAPPED_LOGS_SKIPPED:
            assert name in mapped_skipped, name
            continue
        expected = log_lines(source, *ti)
        assert expected, name
        if target.major >= 3 and source_version in WITHOUT_RETRY_HISTORY and try_number < ti_try(source, ti):
            assert f"{name}," in f"{unshown},", name  # Airflow 3 shows an earlier try only from retry history
            continue
        assert log_lines(target, *ti) == expected, name
        compared += 1
    assert compared >= 8

    if source.major == 3:  # Airflow 3 task instance ids are kept, not made anew
        ids = "SELECT id::text FROM task_instance WHERE dag_id = ANY(%s) ORDER BY 1"
        assert target.sql(ids, (list(REAL_DAGS),)) == source.sql(ids, (list(REAL_DAGS),))

    again = rig.run_migration_dag(target, source, EVERYTHING)
    assert again.run_state == "success", again.explain()
    writes = {label: s["target_writes"] for label, s in again.summaries.items() if s["target_writes"]}
    assert writes == {}, writes


def test_a_pair_outside_the_matrix_is_refused_at_start(servers):
    source = servers.get("source", UNSUPPORTED[0], [UNSUPPORTED])
    target = servers.get("target", UNSUPPORTED[1], [UNSUPPORTED])
    empty_target(target)
    started = time.monotonic()
    result = rig.run_migration_dag(target, source, EVERYTHING)
    took = time.monotonic() - started  # the whole `airflow dags test`, process start included
    assert result.run_state == "failed" and result.task_states["start"] == "failed", result.task_states
    assert took < 30, took
    message = f"migrating from Airflow {rig.RELEASES['3.3'][0]} into Airflow {rig.RELEASES['2.11'][0]} is not supported"
    assert result.report["refused"].startswith(message), result.report  # the report names the reason
    assert "an Airflow 3 source migrates only into an Airflow 3 target" in result.report["refused"]
    assert target.sql("SELECT count(*) FROM dag_run WHERE dag_id = ANY(%s)", (list(REAL_DAGS),)) == [(0,)]
    assert target.sql("SELECT count(*) FROM variable") == [(0,)]  # nothing written, not even a marker


#: Airflow 3.0's ``airflow dags test`` prints its in-process supervisor's debug traffic, the values a
#: task asks it to mask among them; those lines are Airflow's own, and a deployment at log level INFO
#: does not write them.
AIRFLOW_DEBUG_TRAFFIC = "Sending request                msg=MaskSecret("


def assert_no_secret(text: str) -> None:
    secrets = [*corpus.SECRETS.values(), rig.ADMIN_PASSWORD]
    lines = [line for line in text.splitlines()
             if any(secret in line for secret in secrets) and AIRFLOW_DEBUG_TRAFFIC not in line]
    shown = [line[:160] for line in lines[:3]]
    for secret in secrets:
        shown = [line.replace(secret, "<SECRET>") for line in shown]
    assert not lines, f"{len(lines)} log line(s) with a secret, such as: {shown}"


def ti_try(server: rig.AirflowServer, ti: tuple) -> int:
    dag_id, run_id, task_id, map_index, _ = ti
    return server.sql("SELECT try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
                      "AND map_index = %s", (dag_id, run_id, task_id, map_index))[0][0]
