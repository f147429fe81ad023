"""Reset on the target: refused without the DAG ids typed twice, or for an unpaused DAG with runs of
its own; a dry run counts; the source is never written."""

from __future__ import annotations

import pytest

from starship_dags.operators.reset import AIRFLOW_LOG_FOLDERS, ResetTargetOperator
from starship_dags.report import Summary


def _reset(mocker, dag_ids, confirm, *, target_runs=("r1", "r2"), source_runs=("r1", "r2"), paused=True,
           dry_run=False, allow=False):
    op = ResetTargetOperator(task_id="reset", dag_ids=dag_ids, confirm_dag_ids=confirm, dry_run=dry_run,
                             allow_target_runs=allow)
    source, target = mocker.MagicMock(), mocker.MagicMock()
    target.get_variables.return_value = [{"key": "starship_dags.sync.a", "val": '{"format": 1}'}]
    target.iter_dag_runs.side_effect = lambda dag_id: iter([{"run_id": r} for r in target_runs])
    source.iter_dag_runs.side_effect = lambda dag_id: iter([{"run_id": r} for r in source_runs])
    target.rest_dag.return_value = {"is_paused": paused}
    target.iter_task_instances.side_effect = lambda dag_id: iter([{"run_id": "r1", "try_number": 2}])
    target.iter_task_instance_history.side_effect = lambda dag_id: iter([{"try_number": 1}])
    target.xcom_entries.return_value = {("r1", "t", -1): ["return_value"]}
    op.__dict__.update(source_hook=source, target_hook=target)
    mocker.patch.object(ResetTargetOperator, "log_folders", return_value=[])
    summary = Summary(resource="reset", dry_run=dry_run)
    op.begin()
    op.migrate(summary, {})
    return summary, source, target


@pytest.mark.parametrize("confirm", [[], ["a"], "a, c", None])
def test_without_the_dag_ids_typed_twice_nothing_is_deleted(mocker, confirm):
    with pytest.raises(ValueError, match="reset refused: the DAG ids typed twice differ"):
        _reset(mocker, ["a", "b"], confirm)


def test_no_dag_ids_is_refused(mocker):
    with pytest.raises(ValueError, match="no DAG ids given"):
        _reset(mocker, [], [])


def test_a_reset_deletes_runs_logs_and_markers_on_the_target_only(mocker):
    summary, source, target = _reset(mocker, "a, b", ["b", "a"])
    assert sorted(c.args[0] for c in target.delete_dag_runs.call_args_list) == ["a", "b"]
    target.delete_variable.assert_called_once_with("starship_dags.sync.a")  # only a had a marker
    assert summary.updated == 2 and summary.failed == 0
    assert "a: deleted 2 runs (0 the target's own), 1 task instances, 1 retry-history rows, 1 XComs, the logs of 2 " \
           "tries, the sync marker" in summary.notes
    writes = [name for name, *_ in source.method_calls if name.startswith(("delete", "create", "set", "put"))]
    assert writes == []  # the source is read (its runs), never written


def test_a_dry_run_counts_and_deletes_nothing(mocker):
    summary, _, target = _reset(mocker, ["a"], ["a"], dry_run=True)
    assert not target.delete_dag_runs.called and not target.delete_variable.called
    assert summary.notes == ["a: would delete 2 runs (0 the target's own), 1 task instances, 1 retry-history rows, "
                             "1 XComs, the logs of 2 tries, the sync marker"]


def test_an_unpaused_dag_with_runs_of_its_own_is_refused_unless_allowed(mocker):
    summary, _, target = _reset(mocker, ["a"], ["a"], target_runs=("r1", "own"), source_runs=("r1",), paused=False)
    assert summary.failed == 1 and "unpaused on the target with 1 run(s) the migration did not make" in \
        summary.failures[0]["reason"]
    assert not target.delete_dag_runs.called
    summary, _, target = _reset(mocker, ["a"], ["a"], target_runs=("r1", "own"), source_runs=("r1",), paused=False,
                                allow=True)
    assert summary.updated == 1 and target.delete_dag_runs.called
    # paused: the target's own runs are the user's to lose
    summary, _, target = _reset(mocker, ["a"], ["a"], target_runs=("r1", "own"), source_runs=("r1",), paused=True)
    assert summary.updated == 1


def test_airflows_own_log_folders_are_never_a_dags(monkeypatch, tmp_path):
    from airflow.configuration import conf

    monkeypatch.setattr(conf, "get", lambda section, key, **kw: str(tmp_path))
    assert ResetTargetOperator.log_folders("scheduler") == [tmp_path / "dag_id=scheduler"]
    assert ResetTargetOperator.log_folders("etl") == [tmp_path / "dag_id=etl", tmp_path / "etl"]
    assert "scheduler" in AIRFLOW_LOG_FOLDERS
