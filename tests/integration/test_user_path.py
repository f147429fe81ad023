"""The migration as users run it: real schedulers on both sides, triggers through the target's REST
API and through its UI in a real browser, the scheduled sync, and the cutover.

Source: Airflow 2.11 with its scheduler, running ``cut_minutely`` every minute. Target: Airflow 3.3
with scheduler and DAG processor, holding this package's two DAGs and the same ``cut_minutely``.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path

import pytest
import requests

from tests.integration import rig

CUT_DAG = "cut_minutely"
CUT_PAUSED_DAG = "cut_paused"
CUT_SLOW_DAG = "cut_slow"  # triggered just before the cutover: still running when it starts
DONE_DAG = "done_once"  # run once on the source when it starts, never again
ENV_SECRET = "env-only-s3cret-9d1e"
ARTIFACTS_DIR = rig.ROOT / "test-artifacts"

CUT_DAG_FILE = '''
"""Scheduled every minute since START, for the cutover test."""
import datetime
from airflow import DAG
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

START = datetime.datetime.fromisoformat("{start}")
with DAG("{cut}", schedule="* * * * *", start_date=START, catchup=True, max_active_runs=1,
         default_args={{"retries": 0}}):
    BashOperator(task_id="work", bash_command="sleep 4")
with DAG("{paused}", schedule="@daily", start_date=START, catchup=False):
    BashOperator(task_id="work", bash_command="true")
with DAG("{slow}", schedule=None, start_date=START, catchup=False):
    BashOperator(task_id="work", bash_command="sleep 30")
with DAG("{done}", schedule=None, start_date=START, catchup=False):
    BashOperator(task_id="work", bash_command="echo done once")
'''


class Rest:
    """The target's REST API (Airflow 3) as a user would call it, with a bearer token."""

    def __init__(self, server: rig.AirflowServer) -> None:
        self.url = server.url
        self.session = requests.Session()
        answer = self.session.post(f"{self.url}/auth/token",
                                   json={"username": rig.ADMIN_USER, "password": rig.ADMIN_PASSWORD}, timeout=30)
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, route: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v2/{route}", timeout=60, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.call("GET", f"dags/{dag_id}")
            if answer.status_code == 200:
                return answer.json()
            time.sleep(2)
        raise AssertionError(f"{dag_id} not parsed on the target after {timeout} s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"dags/{dag_id}", json={"is_paused": paused}).raise_for_status()

    def trigger(self, dag_id: str, conf: dict) -> str:
        answer = self.call("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}").json().get("state")
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_id} still {state} after {timeout} s")


def task_states(server: rig.AirflowServer, dag_id: str, run_id: str) -> dict[str, str]:
    return dict(server.sql(
        "SELECT task_id || CASE WHEN map_index >= 0 THEN '[' || map_index || ']' ELSE '' END, state "
        "FROM task_instance WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)))


def target_variable(server: rig.AirflowServer, key: str) -> str | None:
    """A variable's value as Airflow serves it (the database column may be encrypted)."""
    return (server.client().by_key("variables", "key").get(key) or {}).get("val")


def report_of(server: rig.AirflowServer, dag_id: str, run_id: str) -> dict:
    rows = server.sql("SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'report' "
                      "AND key IN ('return_value', 'report')", (dag_id, run_id))
    assert rows, f"no report from {dag_id} {run_id}: {task_states(server, dag_id, run_id)}"
    return rig.xcom_json(rows[0][0])


@pytest.fixture(scope="module")
def live(envs, tmp_path_factory):
    """A source and a target, both with their schedulers running."""
    start = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0) - datetime.timedelta(minutes=3)
    dag_file = tmp_path_factory.mktemp("cut") / "cut_dags.py"
    dag_file.write_text(CUT_DAG_FILE.format(start=start.isoformat(), cut=CUT_DAG, paused=CUT_PAUSED_DAG,
                                            slow=CUT_SLOW_DAG, done=DONE_DAG))
    source = rig.AirflowServer("livesrc", envs["2.11"], dags=[dag_file], extra_env={
        "AIRFLOW_VAR_FROM_ENVIRONMENT": ENV_SECRET,
        "AIRFLOW_CONN_FROM_ENVIRONMENT": f"postgres://user:{ENV_SECRET}@db.example:5432/app",
    })
    target = rig.AirflowServer("livetgt", envs["3.3"], dags=[rig.MIGRATION_DAG, rig.SYNC_DAG, dag_file])
    target.extra_env.update({
        **source.connection_env("starship_source"), **target.connection_env("starship_target"),
        "STARSHIP_SYNC_SCHEDULE": "* * * * *",  # the sync's first run comes within a minute
    })
    try:
        source.start(scheduler=True)
        source.cli("dags", "unpause", CUT_DAG)
        source.cli("dags", "unpause", DONE_DAG)
        source.cli("dags", "trigger", DONE_DAG, "-r", "done_run")
        rig.seed(source, {"variables": [{"key": "live_var", "val": "from the source"}],
                          "pools": [{"name": "live_pool", "slots": 3}]})
        target.start(scheduler=True)
        yield source, target, start
    finally:
        target.stop()
        source.stop()


def test_triggered_through_rest_with_conf_runs_on_the_scheduler(live):
    source, target, _ = live
    rest = Rest(target)
    rest.wait_for_dag("starship_migration")
    rest.set_paused("starship_migration", False)
    run_id = rest.trigger("starship_migration", {"resources": ["pools", "variables", "connections"],
                                                 "conflict_policy": "overwrite"})
    state = rest.wait_for_run("starship_migration", run_id)
    states = task_states(target, "starship_migration", run_id)
    assert state == "success", states
    assert states["report"] == states["validate_settings"] == states["settings.environment"] == "success", states
    # the cutover is off: the start skipped both its tasks before they started (no worker ever
    # took them), and went on with the history's input
    assert states["cutover_pause_source"] == states["cutover_unpause_target"] == "skipped", states
    assert states["start"] == "success", states
    started = target.sql("SELECT task_id FROM task_instance WHERE dag_id = 'starship_migration' AND run_id = %s "
                         "AND task_id LIKE 'cutover%%' AND coalesce(hostname, '') <> ''", (run_id,))
    assert started == [], started
    assert target_variable(target, "live_var") == "from the source"
    assert target.sql("SELECT slots FROM slot_pool WHERE pool = 'live_pool'") == [(3,)]

    report = report_of(target, "starship_migration", run_id)
    assert report["failed"] == 0 and not report["missing"], report["table"]
    assert {"AIRFLOW_CONN_FROM_ENVIRONMENT", "AIRFLOW_VAR_FROM_ENVIRONMENT"} <= set(report["environment_only"])
    assert "not migrated: set these on the target" in report["table"]
    validation = next(s for s in report["summaries"] if s["resource"] == "validation")
    assert validation["failed"] == 0 and validation["unchanged"] == 3, validation  # pools, variables, connections
    assert any(n.startswith("variables: source ") for n in validation["notes"]), validation
    logs = rig.task_log_text(target)
    assert "AIRFLOW_VAR_FROM_ENVIRONMENT" in logs  # the report's table is in the task log ...
    assert ENV_SECRET not in logs and rig.ADMIN_PASSWORD not in logs  # ... values never are


def test_an_idle_rerun_starts_no_xcom_or_log_task(live):
    """On the real scheduler, an unchanged DAG's XCom and log tasks are skipped before they start."""
    source, target, _ = live
    rest = Rest(target)
    rest.wait_for_dag(DONE_DAG)
    rest.wait_for_dag("starship_migration")
    rest.set_paused("starship_migration", False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and source.sql(
            "SELECT state FROM dag_run WHERE dag_id = %s", (DONE_DAG,)) != [("success",)]:
        time.sleep(2)
    assert source.sql("SELECT state FROM dag_run WHERE dag_id = %s", (DONE_DAG,)) == [("success",)]
    conf = {"resources": ["dag_history", "xcoms", "task_logs"], "dag_ids": [DONE_DAG], "history_tasks": 1}
    started = {}
    for attempt in ("first", "idle"):
        run_id = rest.trigger("starship_migration", conf)
        state = rest.wait_for_run("starship_migration", run_id)
        assert state == "success", task_states(target, "starship_migration", run_id)
        started[attempt] = dict(((t, i), (s, bool(host))) for t, i, s, host in target.sql(
            "SELECT task_id, map_index, state, coalesce(hostname, '') FROM task_instance "
            "WHERE dag_id = 'starship_migration' AND run_id = %s AND task_id = 'history.xcoms_logs_notes'",
            (run_id,)))
    # the first run copies the run's XComs and its log: the task runs
    assert started["first"] == {("history.xcoms_logs_notes", 0): ("success", True)}
    # the rerun finds the DAG unchanged: no worker ever takes the task
    assert started["idle"] == {("history.xcoms_logs_notes", 0): ("skipped", False)}
    assert target.sql("SELECT state FROM dag_run WHERE dag_id = %s", (DONE_DAG,)) == [("success",)]


def test_scheduled_sync_runs_by_itself_and_converges(live):
    source, target, _ = live
    rest = Rest(target)
    rig.seed(source, {"variables": [{"key": "live_var", "val": "changed on the source"}]})
    rest.wait_for_dag("starship_sync")
    rest.set_paused("starship_sync", False)
    deadline = time.monotonic() + 240
    finished = []
    while time.monotonic() < deadline and not finished:
        finished = target.sql("SELECT run_id, state FROM dag_run WHERE dag_id = 'starship_sync' "
                              "AND run_type = 'scheduled' AND state IN ('success', 'failed')")
        time.sleep(3)
    rest.set_paused("starship_sync", True)
    assert finished, "the scheduler ran no starship_sync run in 4 minutes"
    run_id, state = finished[0]
    assert state == "success", task_states(target, "starship_sync", run_id)
    # conflict policy overwrite: the source's change reaches the target
    assert target_variable(target, "live_var") == "changed on the source"


def test_trigger_form_in_a_real_browser(live):
    source, target, _ = live
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    rest = Rest(target)
    before = {r["dag_run_id"] for r in rest.call("GET", "dags/starship_migration/dagRuns").json()["dag_runs"]}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{target.url}/")
        page.fill("input[name='username']", rig.ADMIN_USER)
        page.fill("input[name='password']", rig.ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        page.goto(f"{target.url}/dags/starship_migration")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Conflict policy").first.wait_for()
        for title in ("Resources", "Dry run", "DAG ids", "Most recent runs per DAG", "Runs since", "Cut over",
                      "Validate counts", "Source connection id", "Target connection id"):
            label = dialog.locator("label").filter(has_text=re.compile(rf"^{re.escape(title)}\s*\*?$"))
            assert label.count() == 1, f"{title!r} is not on the trigger form"
        assert dialog.get_by_text("What to migrate.").count() == 1  # descriptions are shown
        # Two parameters: only pools, with conflict policy overwrite.
        for name in ("variables", "connections", "dag_history", "xcoms", "task_logs", "notes"):
            dialog.locator(f"[aria-label='Remove {name}'] [role=button]").click()
        dialog.locator("#element_conflict_policy").click()
        page.get_by_role("option", name="overwrite").click()
        dialog.locator("#element_resources").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS_DIR / "trigger-form.png"))
        dialog.get_by_role("button", name="Trigger").click()
        deadline = time.monotonic() + 600
        new = []
        while time.monotonic() < deadline and not new:
            runs = rest.call("GET", "dags/starship_migration/dagRuns").json()["dag_runs"]
            new = [r["dag_run_id"] for r in runs if r["dag_run_id"] not in before]
            time.sleep(1)
        assert new, "no run was created by the form"
        state = rest.wait_for_run("starship_migration", new[0])
        page.goto(f"{target.url}/dags/starship_migration/runs/{new[0]}")
        page.get_by_text("success", exact=False).first.wait_for()
        page.screenshot(path=str(ARTIFACTS_DIR / "finished-run.png"), full_page=True)
        browser.close()
    states = task_states(target, "starship_migration", new[0])
    assert state == "success", states
    conf = target.sql("SELECT conf FROM dag_run WHERE run_id = %s", (new[0],))[0][0]
    conf = json.loads(bytes(conf)) if isinstance(conf, (bytes, memoryview)) else conf
    assert conf["resources"] == ["pools"] and conf["conflict_policy"] == "overwrite", conf
    assert states["settings.pools"] == "success" and states["settings.variables"] == "skipped", states


def test_cutover_with_schedulers_on_both_sides(live):
    source, target, start = live
    rest = Rest(target)
    rest.wait_for_dag(CUT_DAG)
    rest.wait_for_dag(CUT_PAUSED_DAG)
    rest.wait_for_dag(CUT_SLOW_DAG)
    # Let the source run at least four intervals of cut_minutely first.
    deadline = time.monotonic() + 360
    while time.monotonic() < deadline:
        done = source.sql("SELECT count(*) FROM dag_run WHERE dag_id = %s AND state = 'success'", (CUT_DAG,))[0][0]
        if done >= 4:
            break
        time.sleep(3)
    assert done >= 4, f"the source ran {done} runs of {CUT_DAG}"
    assert rest.wait_for_dag(CUT_DAG)["is_paused"]  # new DAGs start paused on the target
    # The scheduled sync test copied this DAG's whole history; start the cutover from none of it.
    target.sql("DELETE FROM dag_run WHERE dag_id = %s", (CUT_DAG,))
    target.sql("DELETE FROM variable WHERE key = %s", ("starship_dags.sync." + CUT_DAG,))

    # A run that is still running when the cutover starts must finish on the source and be copied.
    source.cli("dags", "unpause", CUT_SLOW_DAG)
    source.cli("dags", "trigger", CUT_SLOW_DAG, "-r", "slow_run")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and source.sql(
            "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = 'slow_run'", (CUT_SLOW_DAG,)) != [("running",)]:
        time.sleep(1)
    rest.set_paused("starship_migration", False)
    run_id = rest.trigger("starship_migration", {
        "resources": ["dag_history"], "dag_ids": [CUT_DAG, CUT_PAUSED_DAG, CUT_SLOW_DAG], "cutover": True,
        "runs_limit": 2,  # older intervals ran on the source but are not copied: the target must not run them
        "cutover_timeout_minutes": 5,
    })
    state = rest.wait_for_run("starship_migration", run_id, timeout=900)
    states = task_states(target, "starship_migration", run_id)
    assert state == "success", states
    cut_at = datetime.datetime.now(datetime.timezone.utc)

    source_runs = source.sql("SELECT run_id, execution_date, state FROM dag_run WHERE dag_id = %s", (CUT_DAG,))
    assert all(s in ("success", "failed") for _, _, s in source_runs), source_runs  # drained before the copy
    assert source.sql("SELECT is_paused FROM dag WHERE dag_id = %s", (CUT_DAG,)) == [(True,)]
    # the slow run was waited for, not frozen by the pause: it finished on the source and was copied
    assert source.sql("SELECT state FROM dag_run WHERE run_id = 'slow_run'") == [("success",)]
    assert target.sql("SELECT state FROM dag_run WHERE run_id = 'slow_run'") == [("success",)]
    assert source.sql("SELECT is_paused FROM dag WHERE dag_id = %s", (CUT_SLOW_DAG,)) == [(True,)]
    last_source = max(when for _, when, _ in source_runs)
    migrated = {run for run, _, _ in sorted(source_runs, key=lambda r: r[1])[-2:]}
    assert {r[0] for r in target.sql("SELECT run_id FROM dag_run WHERE dag_id = %s", (CUT_DAG,))} >= migrated

    # The target now runs the DAG: wait for its first own run, then look at everything it created.
    assert target.sql("SELECT is_paused FROM dag WHERE dag_id = %s", (CUT_DAG,)) == [(False,)]
    assert target.sql("SELECT is_paused FROM dag WHERE dag_id = %s", (CUT_PAUSED_DAG,)) == [(True,)]
    deadline = time.monotonic() + 150
    own = []
    while time.monotonic() < deadline and not own:
        own = target.sql("SELECT run_id, logical_date, run_after FROM dag_run WHERE dag_id = %s AND run_id <> ALL(%s) "
                         "ORDER BY run_after", (CUT_DAG, [r for r, _, _ in source_runs]))
        time.sleep(2)
    assert own, "the target's scheduler created no run after the cutover"
    # The source (Airflow 2) ran its last interval when that interval ended; the target (Airflow 3
    # reads the cron as a trigger) must go on one minute later: nothing again, nothing left out.
    source_ran_at = source.sql("SELECT max(data_interval_end) FROM dag_run WHERE dag_id = %s", (CUT_DAG,))[0][0]
    spurious = [(r, when) for r, when, due in own if when <= last_source or due <= source_ran_at]
    assert not spurious, f"runs for intervals that already ran on the source: {spurious}"
    not_copied = {r for r, _, _ in source_runs} - migrated  # older intervals, left out by runs_limit
    assert not_copied and not target.sql("SELECT run_id FROM dag_run WHERE run_id = ANY(%s)", (list(not_copied),))
    assert own[0][2] == source_ran_at + datetime.timedelta(minutes=1), (own[0], source_ran_at)
    assert own[0][2] <= cut_at + datetime.timedelta(minutes=1)  # catching up from there, not skipping ahead

    report = report_of(target, "starship_migration", run_id)
    cutover = [s for s in report["summaries"] if s["resource"] == "cutover"]
    notes = [n for s in cutover for n in s["notes"]]
    assert any(n.startswith(f"{CUT_DAG}: unpaused on the target") for n in notes), notes
    assert any(n.startswith(f"{CUT_PAUSED_DAG}: left paused") for n in notes), notes
    # The pause states from before the cutover stay recorded on the target, so a rerun keeps them.
    assert {r[0] for r in target.sql("SELECT key FROM variable WHERE key LIKE 'starship_dags.cutover.%%'")} == {
        f"starship_dags.cutover.{d}" for d in (CUT_DAG, CUT_PAUSED_DAG, CUT_SLOW_DAG)}
