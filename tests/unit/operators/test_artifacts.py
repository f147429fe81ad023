"""The artifacts task: jobs copied as the source's pages come in, both kinds by the same threads."""

from __future__ import annotations

from starship_dags.operators.artifacts import ArtifactsMigrationOperator
from starship_dags.operators.copier import Copier
from starship_dags.plan import DagPlan


def artifacts_task(mocker, kinds=("xcoms", "task_logs"), runs=("r1", "r2"), concurrency=2, existing=()):
    """The task on DAG d with these runs planned, and two MagicMock hooks (each thread gets the same)."""
    op = ArtifactsMigrationOperator(task_id="artifacts", source_dags=[{"dag_id": "d"}], plans={"plans": {}},
                                    kinds=list(kinds), concurrency=concurrency)
    op.source_dag = {"dag_id": "d"}
    op.plan = DagPlan("d", idle=False, artifact_run_ids=list(runs), artifact_existing_run_ids=list(existing),
                      source_total=len(runs))
    source, target = mocker.MagicMock(), mocker.MagicMock()
    source.airflow_major = target.airflow_major = 2
    for hook in (source, target):
        hook.request_count = hook.api_calls = hook.write_count = 0
        hook.extras = {}
        hook.sibling.side_effect = (lambda same: lambda **_: same)(hook)
    op.__dict__.update(source_hook=source, target_hook=target)
    return op, source, target


def test_task_instances_are_copied_as_the_source_pages_come_in(mocker):
    """The copy of a DAG's XComs or logs does not read every task instance first: a page's rows
    are copied (a bounded number waiting) before the next page is read."""
    from starship_dags.operators import artifacts

    events: list[tuple[str, object]] = []
    runs = [f"r{i:03d}" for i in range(300)]

    def page(dag_id, limit, offset):
        events.append(("read", offset))
        return {"dag_run_count": len(runs), "task_instances": [
            {"dag_id": "d", "run_id": r, "task_id": t, "map_index": -1, "try_number": 1,
             "state": "running" if (r, t) == ("r007", "b") else "success"}
            for r in runs[offset:offset + limit] for t in "ab"]}

    class Recording(Copier):
        resource = "task_logs"

        def jobs(self):
            return self.finished_task_instances()

        def copy_one(self, row, source, target):
            with self.op.lock:
                events.append(("copy", (row["run_id"], row["task_id"])))

    op, source, _ = artifacts_task(mocker, kinds=["task_logs"], runs=runs)
    source.get_task_instances.side_effect = page
    from starship_dags.report import Summary

    op.run_jobs([Recording(op, Summary(resource="task_logs", dag_id="d"), op.lock)])
    reads = [i for i, (kind, _) in enumerate(events) if kind == "read"]
    copied = [what for kind, what in events if kind == "copy"]
    assert len(reads) >= 2
    first_page_rows = 2 * 100 - 1  # FIRST_PAGE_RUNS runs of two tasks, one of them still running
    waiting = 2 * artifacts.IN_FLIGHT_PER_THREAD + 1
    assert sum(1 for kind, _ in events[:reads[1]] if kind == "copy") >= first_page_rows - waiting
    assert sorted(copied) == sorted((r, t) for r in runs for t in "ab" if (r, t) != ("r007", "b"))


def test_xcoms_and_logs_share_the_threads_and_each_counts_its_own(mocker):
    op, source, target = artifacts_task(mocker)
    source.xcom_entries.return_value = {("r1", "a", -1): ["return_value"]}
    target.xcom_entries.return_value = {}
    source.serves_xcoms = True

    def read_xcoms(*ti, keys=None):
        source.request_count += 1
        source.api_calls += 1
        return {"return_value": b'"v"'}

    source.read_xcoms.side_effect = read_xcoms
    source.get_task_instances.return_value = {"dag_run_count": 2, "task_instances": [
        {"dag_id": "d", "run_id": r, "task_id": "a", "map_index": -1, "try_number": 1, "state": "success",
         "hostname": "w"} for r in ("r1", "r2")]}
    source.open_task_log.side_effect = lambda *ti: (piece for piece in [b"a log line\n"])
    target.open_task_log.return_value = None
    ti = mocker.MagicMock(map_index=0)
    op.begin()
    op.last_summary = None
    main, error = op.summarized({"ti": ti})
    assert error is None, error
    assert main["resource"] == "xcoms" and main["created"] == 1
    logs, = main["parts"]
    assert logs["resource"] == "task_logs" and logs["created"] == 2, logs  # the two task instances' logs
    assert target.put_task_log.call_count == 2 and target.create_xcom.call_count == 1
    assert logs["source_api_calls"] == 0 and main["source_api_calls"] >= 1  # each job's requests to its kind


def test_threads_come_from_the_connections_extras(mocker):
    from starship_dags.operators.artifacts import DEFAULT_CONCURRENCY

    def threads(source_extra, target_extra, given=None):
        op, source, target = artifacts_task(mocker, concurrency=given)
        source.number.side_effect = lambda arg, key, default: source_extra
        target.number.side_effect = lambda arg, key, default: target_extra
        return op.concurrency

    assert threads(0, 0) == DEFAULT_CONCURRENCY  # neither sets it
    assert threads(0, 12) == 12 and threads(6, 12) == 6  # the smaller of those set
    assert threads(6, 12, given=2) == 2


def test_a_run_without_xcoms_or_logs_selected_is_left_out(mocker):
    op, _, _ = artifacts_task(mocker, kinds=[])
    assert op.start_dag({"dag_id": "d"}) is False


def test_the_task_can_be_deep_copied_before_it_runs():
    """Airflow 3.0's ``dags test`` deep-copies every task: the threads' lock is made only when used."""
    import copy

    op = ArtifactsMigrationOperator(task_id="artifacts", source_dags=[{"dag_id": "d"}], plans={"plans": {}})
    twin = copy.deepcopy(op)
    assert twin.lock is not op.lock and twin.lock.acquire(blocking=False)
