"""Task logs: streamed comparison, and a source that serves no log route."""

from __future__ import annotations

import io

from starship_dags.exceptions import (
    StarshipConflictError,
)
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
    from starship_dags.operators.task_logs import TaskLogsMigrationOperator

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
