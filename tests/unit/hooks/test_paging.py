"""The one paged reader: runs met on two pages taken from the first, pages sized towards PAGE_ROWS rows."""

from __future__ import annotations

from starship_dags.hooks.starship import StarshipHook
from tests.unit.fakes import ti_row as _ti


def test_task_instance_pages_that_overlap_give_each_run_once_from_its_first_page(mocker, conn_env):
    hook = StarshipHook(conn_env("c", host="http://127.0.0.1:9", password="t"))
    # paged by runs, two to a page; dates tie, so the second page repeats run b (one of its
    # task instances more by then: the run is taken whole from the page it was met on first)
    pages = {0: [_ti("a", "t"), _ti("a", "u"), _ti("b", "t")],
             2: [_ti("b", "t"), _ti("b", "u"), _ti("c", "t"), _ti("c", "t")],
             4: [_ti("d", "t", map_index=0), _ti("d", "t", map_index=1)]}
    mocker.patch.object(hook, "get_task_instances", side_effect=lambda dag_id, limit, offset: {
        "task_instances": pages[offset], "dag_run_count": 5})
    got = [(r["run_id"], r["task_id"], r["map_index"]) for r in hook.iter_task_instances("d", page_size=2)]
    assert got == [("a", "t", -1), ("a", "u", -1), ("b", "t", -1), ("c", "t", -1), ("d", "t", 0), ("d", "t", 1)]


def test_run_pages_grow_towards_page_rows_and_shrink_for_heavy_runs():
    from starship_dags.hooks.paging import MAX_PAGE_RUNS, PAGE_ROWS, RunPager

    pager = RunPager()
    assert (pager.offset, pager.limit) == (0, 100)
    pager.advance(500)  # 5 rows per run: room for 1,000 runs, but a page grows at most 4-fold
    assert (pager.offset, pager.limit) == (100, 400)
    pager.advance(2000)
    assert (pager.offset, pager.limit) == (500, PAGE_ROWS // 5)
    pager.advance(0)  # runs without rows (retry history of runs never retried)
    assert pager.limit == min(4 * PAGE_ROWS // 5, MAX_PAGE_RUNS)
    pager.advance(pager.limit * 1000)  # 1,000 rows per run
    assert pager.limit == PAGE_ROWS // 1000
    pager.advance(10 * PAGE_ROWS)  # one run heavier than a whole page: one run per page
    assert pager.limit == 1 and pager.offset == 100 + 400 + 1000 + 2000 + 5
