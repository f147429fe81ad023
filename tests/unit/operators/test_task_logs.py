"""Task logs: streamed comparison, and a source that serves no log route."""

from __future__ import annotations

import io

from starship_dags.exceptions import StarshipConflictError
from starship_dags.operators.task_logs import _same_stream
from starship_dags.report import Summary


def test_streamed_comparison():
    spool = io.BytesIO(b"abcdef")
    assert _same_stream(iter([b"ab", b"cdef"]), spool)
    assert not _same_stream(iter([b"ab", b"cdeX"]), spool)
    assert not _same_stream(iter([b"abc"]), spool)  # shorter on the target
    assert not _same_stream(iter([b"abcdefg"]), spool)  # longer on the target


def test_a_source_without_any_log_route_gives_one_clear_line(mocker):
    from starship_dags.exceptions import StarshipPermissionError
    from starship_dags.operators.task_logs import LogCopier
    from tests.unit.operators.test_artifacts import artifacts_task

    op, source, target = artifacts_task(mocker, kinds=["task_logs"])
    source.open_task_log.side_effect = StarshipConflictError(
        "starship_source", "GET", "/api/starship/task_log", 409, "Task logs are only supported on Astronomer environments.")
    source.open_rest_log.side_effect = StarshipPermissionError("starship_source", "GET", "/api/v1/…/logs/1", 403, "no")
    summary = Summary(resource="task_logs", dag_id="d")
    first = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
    assert LogCopier(op, summary, op.lock).prepare(first) is False
    assert summary.failed == 0
    assert len(summary.notes) == 1 and summary.notes[0].startswith("logs unavailable: Starship /task_log refused")
    assert "403" in summary.notes[0]
    target.put_task_log.assert_not_called()


def test_a_log_is_asked_for_only_where_a_try_ran():
    from starship_dags.operators.task_logs import tries_with_a_log

    ran = {"try_number": 2, "state": "success", "start_date": "2024-01-01T00:00:00+00:00", "hostname": "w1"}
    assert tries_with_a_log(ran) == 2
    # skipped by the scheduler (no worker): its dates are set, but no try ran; earlier tries did
    assert tries_with_a_log({"try_number": 2, "state": "skipped", "start_date": "2024-01-01", "hostname": ""}) == 1
    assert tries_with_a_log({"try_number": 0, "state": "upstream_failed", "hostname": None}) == 0
    # a task that raised AirflowSkipException ran on a worker: its log is there
    assert tries_with_a_log({"try_number": 1, "state": "skipped", "hostname": "w1"}) == 1
    assert tries_with_a_log({"try_number": 1, "state": "failed", "start_date": None, "hostname": ""}) == 0
