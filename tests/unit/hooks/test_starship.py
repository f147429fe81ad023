"""Routes that do more than one request: the XCom listing, its page size, its Airflow 2 run dates."""

from __future__ import annotations

import pytest

from starship_dags.hooks.starship import IncompleteListing, StarshipHook


def _entry(run, task, key="return_value", map_index=-1, af2_date=None):
    entry = {"dag_id": "d", "task_id": task, "map_index": map_index, "key": key}
    if af2_date is None:
        entry["run_id"] = run
    else:  # Airflow 2 lists the run's logical date, not its id
        entry["execution_date"] = af2_date
    return entry


def _listing(mocker, hook, entries_by_run, page_size=3):
    """The REST listing: ``entries_by_run`` run id -> entries; the server caps pages at ``page_size``."""
    asked = []

    def page(dag_id, run_id, offset):
        asked.append((run_id, offset))
        entries = [e for run, found in entries_by_run.items() if run_id in ("~", run) for e in found]
        return entries[offset:offset + page_size], len(entries)

    mocker.patch.object(hook, "_xcom_page", side_effect=page)
    return asked


def test_a_dag_with_few_xcoms_is_listed_whole_in_pages(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    found = {"r1": [_entry("r1", "a"), _entry("r1", "a", key="second")], "r2": [],
             "r3": [_entry("r3", "b", map_index=0), _entry("r3", "b", map_index=1)], "r9": [_entry("r9", "c")]}
    asked = _listing(mocker, hook, found)
    got = hook.xcom_entries("d", {"r1", "r2", "r3", "r4"})
    assert got == {("r1", "a", -1): ["return_value", "second"], ("r3", "b", 0): ["return_value"],
                   ("r3", "b", 1): ["return_value"]}  # r9 is not among the runs asked for
    assert asked == [("~", 0), ("~", 3)]  # 5 entries, pages of 3 (the server's cap, not the limit asked)


def test_many_xcoms_in_few_runs_are_listed_run_by_run(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    found = {f"r{n}": [_entry(f"r{n}", "t", key=f"k{k}") for k in range(4)] for n in range(10)}
    asked = _listing(mocker, hook, found)
    got = hook.xcom_entries("d", {"r1", "r2"})  # 14 pages for the whole DAG: two runs cost fewer
    assert set(got) == {("r1", "t", -1), ("r2", "t", -1)} and got[("r1", "t", -1)] == ["k0", "k1", "k2", "k3"]
    assert asked == [("~", 0), ("r1", 0), ("r1", 3), ("r2", 0), ("r2", 3)]


def test_airflow_2_entries_are_given_their_run_ids_by_the_runs_dates(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    found = {"~": [_entry(None, "a", af2_date="2024-01-01T00:00:00+00:00"),
                   _entry(None, "b", af2_date="2024-01-02T00:00:00+00:00")]}
    _listing(mocker, hook, found)
    mocker.patch.object(hook, "iter_dag_runs", return_value=iter([
        {"run_id": "scheduled__one", "execution_date": "2024-01-01 00:00:00+00:00"},
        {"run_id": "scheduled__two", "execution_date": "2024-01-02 00:00:00+00:00"},
        {"run_id": "scheduled__three", "execution_date": "2024-01-03 00:00:00+00:00"}]))
    got = hook.xcom_entries("d", {"scheduled__one", "scheduled__two", "scheduled__three"})
    assert set(got) == {("scheduled__one", "a", -1), ("scheduled__two", "b", -1)}


def test_a_listing_whose_pages_do_not_add_up_is_refused(mocker, conn_env):
    """Airflow 2.7 and 2.8 order entries without their map index: pages may repeat one and skip another."""
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    hook.known_version("2.8.4")
    pages = {0: [_entry("r1", "t", map_index=0), _entry("r1", "t", map_index=1)],
             2: [_entry("r1", "t", map_index=1), _entry("r1", "t", map_index=3)]}  # map index 2 never shows
    mocker.patch.object(hook, "_xcom_page", side_effect=lambda dag_id, run_id, offset: (pages[offset], 4))
    with pytest.raises(IncompleteListing, match="3 distinct XComs of 4 listed"):
        hook.xcom_entries("d", {"r1", "r2", "r3"})
