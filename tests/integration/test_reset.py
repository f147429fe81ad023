"""starship_reset_target on both targets: refused without confirmation, a dry run that counts, a
reset of two DAGs that leaves the third and the source alone, and a migration that restores them."""

from __future__ import annotations

from tests.integration import rig
from tests.integration.history_seed import REAL_DAGS
from tests.integration.parity import assert_no_duplicates_or_orphans, assert_parity
from tests.integration.test_artifacts import source_xcoms, target_xcom

EVERYTHING = {"resources": ["dag_history", "xcoms", "task_logs", "notes"], "dag_ids": list(REAL_DAGS)}
RESET = ["hist_mapped", "hist_retry"]
KEPT = "hist_failing"


def counts(server: rig.AirflowServer) -> dict[str, tuple]:
    query = ("SELECT (SELECT count(*) FROM dag_run WHERE dag_id = %(d)s), "
             "(SELECT count(*) FROM task_instance WHERE dag_id = %(d)s), (SELECT count(*) FROM xcom WHERE dag_id = %(d)s)")
    return {dag_id: server.sql(query, {"d": dag_id})[0] for dag_id in REAL_DAGS}


def reset(target, source, conf) -> rig.DagTestResult:
    return rig.run_migration_dag(target, source, conf, dag_id="starship_reset_target")


def test_reset_two_dags_on_the_target_then_migrate_them_again(history_target):
    source, target = history_target
    first = rig.run_migration_dag(target, source, EVERYTHING)
    assert first.run_state == "success", first.explain()
    on_source, on_target = counts(source), counts(target)
    assert on_target == on_source
    logs = lambda dag_id: sorted(p for p in (target.home / "logs").rglob("*.log") if dag_id in str(p))  # noqa: E731
    assert all(logs(d) for d in REAL_DAGS)

    refused = reset(target, source, {"dag_ids": RESET, "confirm_dag_ids": RESET[:1], "dry_run": False})
    assert refused.run_state == "failed" and "the DAG ids typed twice differ" in refused.output
    assert counts(target) == on_target

    dry = reset(target, source, {"dag_ids": RESET, "confirm_dag_ids": list(reversed(RESET))})  # dry run by default
    assert dry.run_state == "success", dry.explain()
    notes = dry.summaries["reset"]["notes"]
    runs = on_target["hist_mapped"][0]
    assert any(n.startswith(f"hist_mapped: would delete {runs} runs") for n in notes), notes
    assert counts(target) == on_target and all(logs(d) for d in RESET)

    done = reset(target, source, {"dag_ids": RESET, "confirm_dag_ids": RESET, "dry_run": False})
    assert done.run_state == "success", done.explain()
    after = counts(target)
    assert all(after[d] == (0, 0, 0) for d in RESET) and after[KEPT] == on_target[KEPT]
    assert not any(logs(d) for d in RESET) and logs(KEPT)
    assert counts(source) == on_source  # the source is only read
    markers = {r[0] for r in target.sql("SELECT key FROM variable WHERE key LIKE 'starship\\_dags.sync.%%'")}
    assert markers == {f"starship_dags.sync.{KEPT}"}

    again = rig.run_migration_dag(target, source, EVERYTHING)
    assert again.run_state == "success", again.explain()
    assert counts(target) == on_source
    assert_parity(source, target, dags=REAL_DAGS)
    assert_no_duplicates_or_orphans(source, target, dags=REAL_DAGS)
    for key, value in source_xcoms(source).items():
        assert target_xcom(target, key) == value, key
    kept_runs = [s for s in again.summaries.values() if s["resource"] == "dag_runs" and s["dag_id"] == KEPT]
    assert kept_runs and kept_runs[0]["created"] == 0  # the DAG left alone was found unchanged
