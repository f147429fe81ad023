"""Work per task instance: copied as the source's pages come in, a bounded number waiting."""

from __future__ import annotations

from starship_dags.report import Summary


def test_task_instances_are_copied_as_the_source_pages_come_in(mocker):
    """The copy of a DAG's XComs or logs does not read every task instance first: a page's rows
    are copied (a bounded number waiting) before the next page is read."""
    from starship_dags.operators import per_task_instance
    from starship_dags.plan import DagPlan

    events: list[tuple[str, object]] = []
    runs = [f"r{i:03d}" for i in range(300)]

    def page(dag_id, limit, offset):
        events.append(("read", offset))
        return {"dag_run_count": len(runs), "task_instances": [
            {"dag_id": "d", "run_id": r, "task_id": t, "map_index": -1, "try_number": 1,
             "state": "running" if (r, t) == ("r007", "b") else "success"}
            for r in runs[offset:offset + limit] for t in "ab"]}

    class Recording(per_task_instance.TaskInstanceWorkOperator):
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
    operator.source_dag = {"dag_id": "d"}
    operator.plan = DagPlan("d", idle=False, artifact_run_ids=runs, source_total=len(runs))
    operator.__dict__.update(source_hook=source, target_hook=target)
    operator.copy_all(Summary(resource="xcoms", dag_id="d"))

    reads = [i for i, (kind, _) in enumerate(events) if kind == "read"]
    copied = [what for kind, what in events if kind == "copy"]
    assert len(reads) >= 2
    first_page_rows = 2 * 100 - 1  # FIRST_PAGE_RUNS runs of two tasks, one of them still running
    waiting = 2 * per_task_instance.IN_FLIGHT_PER_THREAD + 1
    assert sum(1 for kind, _ in events[:reads[1]] if kind == "copy") >= first_page_rows - waiting
    assert sorted(copied) == sorted((r, t) for r in runs for t in "ab" if (r, t) != ("r007", "b"))
