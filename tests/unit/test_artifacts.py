"""Edge cases of the XCom and log copy: header stripping, streamed comparison, value decoding."""

from __future__ import annotations

import io
import json

from starship_dags.hooks.log_format import strip_ndjson_header as _strip_ndjson_header
from starship_dags.hooks.log_format import strip_text_header as _strip_text_header
from starship_dags.operators.artifacts import _NOT_JSON, _decode, _same, _same_stream


def pieces(data: bytes, size: int):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


def test_text_header_is_cut_wherever_the_chunks_split_it():
    body = (b"127.0.0.1\n INFO - ::group::Log message source details\n*** Found local files:\n"
            b"***   * /x/attempt=1.log\n INFO - ::endgroup::\n[2024] INFO - hello\n[2024] INFO - bye\n")
    for size in (1, 7, 50, len(body)):
        assert b"".join(_strip_text_header(pieces(body, size))) == b"[2024] INFO - hello\n[2024] INFO - bye\n"


def test_text_without_header_is_kept_whole():
    assert b"".join(_strip_text_header(iter([b"plain log\n"]))) == b"plain log\n"


def test_ndjson_header_group_is_dropped_and_records_kept():
    records = [{"event": "::group::Log message source details", "sources": ["/a"]}, {"event": "::endgroup::"},
               {"event": "first", "timestamp": "2024-01-01T00:00:00Z"}, {"event": "second"}]
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    for size in (3, 40, len(body)):
        lines = b"".join(_strip_ndjson_header(pieces(body, size))).splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["first", "second"]


def test_ndjson_without_header_keeps_the_first_record():
    body = json.dumps({"event": "only"}).encode()
    assert json.loads(b"".join(_strip_ndjson_header(iter([body])))) == {"event": "only"}


def test_streamed_comparison():
    spool = io.BytesIO(b"abcdef")
    assert _same_stream(iter([b"ab", b"cdef"]), spool)
    assert not _same_stream(iter([b"ab", b"cdeX"]), spool)
    assert not _same_stream(iter([b"abc"]), spool)  # shorter on the target
    assert not _same_stream(iter([b"abcdefg"]), spool)  # longer on the target


def test_values_compare_as_json_and_non_json_is_marked():
    assert _same(b'{"a": 1, "b": 2}', b'{"b":2,"a":1}')
    assert not _same(b'{"a": 1}', b'{"a": 2}')
    assert _decode(b"\x80\x04pickled") is _NOT_JSON


def test_a_source_without_any_log_route_gives_one_clear_line(mocker):
    from starship_dags.exceptions import StarshipConflictError, StarshipPermissionError
    from starship_dags.operators.artifacts import TaskLogsMigrationOperator
    from starship_dags.report import Summary

    operator = TaskLogsMigrationOperator(task_id="task_logs", source_dags=[{"dag_id": "d"}], plans={"plans": {}})
    operator.source_dag = {"dag_id": "d"}
    source, target = mocker.MagicMock(), mocker.MagicMock()
    source.airflow_major, target.airflow_major = 2, 2
    source.open_task_log.side_effect = StarshipConflictError(
        "starship_source", "GET", "/api/starship/task_log", 409, "Task logs are only supported on Astronomer environments.")
    source.open_rest_log.side_effect = StarshipPermissionError("starship_source", "GET", "/api/v1/…/logs/1", 403, "no")
    operator.__dict__.update(source_hook=source, target_hook=target)
    summary = Summary(resource="task_logs", dag_id="d")
    first = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
    assert operator.prepare(summary, first) is False
    assert summary.failed == 0
    assert len(summary.notes) == 1 and summary.notes[0].startswith("logs unavailable: Starship /task_log refused")
    assert "403" in summary.notes[0]
    target.put_task_log.assert_not_called()


def test_task_instances_are_copied_as_the_source_pages_come_in(mocker):
    """The copy of a DAG's XComs or logs does not read every task instance first: a page's rows
    are copied (a bounded number waiting) before the next page is read."""
    from starship_dags.operators import artifacts
    from starship_dags.report import Summary

    events: list[tuple[str, object]] = []
    runs = [f"r{i:03d}" for i in range(300)]

    def page(dag_id, limit, offset):
        events.append(("read", offset))
        return {"dag_run_count": len(runs), "task_instances": [
            {"dag_id": "d", "run_id": r, "task_id": t, "map_index": -1, "try_number": 1,
             "state": "running" if (r, t) == ("r007", "b") else "success"}
            for r in runs[offset:offset + limit] for t in "ab"]}

    class Recording(artifacts._ArtifactOperator):
        resource = "xcoms"

        def copy_one(self, row, source, target, summary):
            with self._lock:
                events.append(("copy", (row["run_id"], row["task_id"])))

    source, target = mocker.MagicMock(), mocker.MagicMock()
    source.get_task_instances.side_effect = page
    for hook in (source, target):
        hook.request_count = hook.api_calls = hook.write_count = 0
        hook.sibling.side_effect = lambda **_: mocker.MagicMock(request_count=0, api_calls=0, write_count=0)
    operator = Recording(task_id="xcoms", source_dags=[{"dag_id": "d"}], plans={"plans": {}}, concurrency=2)
    operator.source_dag, operator.plan = {"dag_id": "d"}, {"artifact_run_ids": runs, "source_total": len(runs)}
    operator.__dict__.update(source_hook=source, target_hook=target)
    operator.copy_all(Summary(resource="xcoms", dag_id="d"))

    reads = [i for i, (kind, _) in enumerate(events) if kind == "read"]
    copied = [what for kind, what in events if kind == "copy"]
    assert len(reads) >= 2
    first_page_rows = 2 * 100 - 1  # FIRST_PAGE_RUNS runs of two tasks, one of them still running
    waiting = 2 * artifacts.IN_FLIGHT_PER_THREAD + 1
    assert sum(1 for kind, _ in events[:reads[1]] if kind == "copy") >= first_page_rows - waiting
    assert sorted(copied) == sorted((r, t) for r in runs for t in "ab" if (r, t) != ("r007", "b"))
