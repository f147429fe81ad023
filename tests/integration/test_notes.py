"""Notes of runs and task instances, from the Airflow 2.11 source into both targets."""

from __future__ import annotations

from urllib.parse import quote

from tests.integration import rig
from tests.integration.history_seed import REAL_DAGS
from tests.integration.test_artifacts import summaries_of

NOTES = {"resources": ["dag_history", "notes"], "dag_ids": list(REAL_DAGS)}
LONG = ("nøte ✓ 日本 " * 100)[:1000]  # 1,000 characters, the most Airflow keeps
SECRETISH = "password=hunter2 token=abc"  # a note is text, not a secret: it arrives as it is


def _route(server, dag_id, run_id, task_id=None, map_index=-1):
    prefix = "/api/v1" if server.major == 2 else "/api/v2"
    route = f"{prefix}/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
    if task_id is not None:
        route += f"/taskInstances/{quote(task_id, safe='')}" + (f"/{map_index}" if map_index >= 0 else "")
    return server.url + route


def note_of(server, *key) -> str | None:
    answer = server.client().session.get(_route(server, *key), timeout=60)
    assert answer.status_code == 200, (key, answer.status_code, answer.text[:300])
    return answer.json().get("note")


def set_note(server, note, *key) -> None:
    """As a user does in the source's UI (Airflow 2: ``setNote``; Airflow 3: a PATCH of the note)."""
    if server.major == 2:
        answer = server.client().session.patch(_route(server, *key) + "/setNote", json={"note": note}, timeout=60)
    else:
        answer = server.client().session.patch(_route(server, *key), params={"update_mask": "note"},
                                               json={"note": note}, timeout=60)
    assert answer.status_code == 200, (key, answer.status_code, answer.text[:300])


def test_notes_arrive_are_updated_under_overwrite_and_an_idle_rerun_writes_none(history_target):
    source, target = history_target
    # runs with task instances (hist_mapped's run triggered after its end date has none)
    runs = {d: sorted(r[0] for r in source.sql("SELECT DISTINCT run_id FROM task_instance WHERE dag_id = %s", (d,)))
            for d in REAL_DAGS}
    keys = {
        ("hist_retry", runs["hist_retry"][0]): "re-ran after the vendor outage ✓",
        ("hist_failing", runs["hist_failing"][0]): LONG,
        ("hist_retry", runs["hist_retry"][0], "flaky"): SECRETISH,
        ("hist_mapped", runs["hist_mapped"][0], "square", 1): "mapped index 1: known bad data, ignore",
    }
    for key, note in keys.items():
        set_note(source, note, *key)
    try:
        first = rig.run_migration_dag(target, source, NOTES)
        assert first.run_state == "success", first.explain()
        for key, note in keys.items():
            assert note_of(target, *key) == note, key
        assert sum(s["created"] for s in summaries_of(first, "notes")) == len(keys)
        assert rig.ADMIN_PASSWORD not in first.output + rig.task_log_text(target)

        changed = ("hist_retry", runs["hist_retry"][0])
        set_note(source, "changed on the source", *changed)
        kept = rig.run_migration_dag(target, source, {**NOTES, "full_comparison": True})  # skip: the default
        assert kept.run_state == "success", kept.explain()
        assert note_of(target, *changed) == keys[changed]
        assert sum(s["skipped"] for s in summaries_of(kept, "notes")) == 1
        updated = rig.run_migration_dag(target, source, {**NOTES, "full_comparison": True,
                                                         "conflict_policy": "overwrite"})
        assert updated.run_state == "success", updated.explain()
        assert note_of(target, *changed) == "changed on the source"
        totals = {o: sum(s[o] for s in summaries_of(updated, "notes")) for o in ("updated", "unchanged", "created")}
        assert totals == {"updated": 1, "unchanged": len(keys) - 1, "created": 0}, totals

        idle = rig.run_migration_dag(target, source, NOTES)
        assert idle.run_state == "success", idle.explain()
        assert sum(s["target_writes"] for s in idle.summaries.values()) == 0
    finally:
        for key in keys:
            set_note(source, "", *key)  # Airflow 2 takes no null: an empty note is none
