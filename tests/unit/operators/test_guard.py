"""The guard: the sync stands aside, a manual run waits, unselected tasks are skipped."""

from __future__ import annotations

import pytest

from starship_dags.exceptions import (
    StarshipAuthError,
    StarshipServerError,
)
from starship_dags.operators.guard import SKIP_REASON_KEY, ActiveRunGuardOperator
from tests.unit.fakes import context as _context


class FakeRest:
    airflow_version = "2.11.0"  # the guard checks the pair of versions first

    def __init__(self, *answers, paused=False):
        self.answers = list(answers)
        self.paused = paused

    def rest_dag(self, dag_id):
        return {"dag_id": dag_id, "is_paused": self.paused}

    def rest_active_runs(self, dag_id):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_sync_guard_skips_while_a_manual_run_is_active():
    from starship_dags.compat import AirflowSkipException

    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_migration", wait=False)
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "manual__1"}])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    with pytest.raises(AirflowSkipException):
        op.execute(context)
    assert "manual__1" in context["ti"].pushed[SKIP_REASON_KEY]


def test_sync_guard_that_stands_aside_skips_the_whole_run_not_only_the_unselected_tasks():
    from starship_dags.compat import AirflowSkipException

    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_migration", wait=False,
                                children={"settings.pools": False, "cutover_pause_source": False})
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "manual__1"}])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    with pytest.raises(AirflowSkipException):
        op.execute(context)
    # the skip of the guard itself reaches every task but those that run whatever happened upstream
    # (trigger rule all_done, like the cutover's unpause): the skip list names those not meant to run
    assert context["ti"].pushed["skipmixin_key"] == {"skipped": ["cutover_pause_source", "settings.pools"]}


@pytest.mark.parametrize("children, skipped", [
    ({"settings.pools": True, "settings.variables": "False", "cutover_pause_source": False,
      "cutover_unpause_target": False, "validate_settings": ["pools"]},
     ["cutover_pause_source", "cutover_unpause_target", "settings.variables"]),
    ({"settings.pools": True, "cutover_pause_source": "true"}, []),
])
def test_guard_skips_the_tasks_the_form_leaves_out(children, skipped):
    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_sync", wait=True, children=children)
    op.__dict__["target_hook"] = FakeRest([])
    op.__dict__["source_hook"] = FakeRest([])
    context = _context()
    context["ti"].map_index = -1
    # the same skip list on Airflow 2 and 3, and the task goes on (its value may be a map's input)
    assert op.execute(context) is None
    assert context["ti"].pushed.get("skipmixin_key") == ({"skipped": skipped} if skipped else None)


def test_manual_guard_waits_for_the_sync_and_tolerates_an_unreadable_api(monkeypatch):
    from starship_dags.operators import guard

    monkeypatch.setattr(guard.time, "sleep", lambda _s: None)
    op = ActiveRunGuardOperator(task_id="guard", other_dag_id="starship_sync", wait=True, poll_seconds=0)
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "scheduled__1"}], [])
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # returns once the sync is done
    op.__dict__["target_hook"] = FakeRest(StarshipServerError("t", "GET", "/api/v2/x", 500, "boom"))
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # cannot check: goes on
    op.__dict__["target_hook"] = FakeRest([{"dag_run_id": "scheduled__2"}], paused=True)
    op.__dict__["source_hook"] = FakeRest([])
    op.execute(_context())  # a paused sync's run stands still: not waited for
    op.__dict__["target_hook"] = FakeRest(StarshipAuthError("t", "GET", "/api/v2/x", 401, "no"))
    op.__dict__["source_hook"] = FakeRest([])
    with pytest.raises(StarshipAuthError):
        op.execute(_context())
