"""The one paged reader of Starship's run-paged routes: ``dag_runs``, ``task_instances`` and
``task_instance_history``.

Starship pages the last two by DAG runs (``limit`` runs at ``offset``, with every row of those runs)
and orders runs by start date without a tie-breaker; each page is its own query, so pages may
overlap when the source changes or start dates tie. :func:`run_pages` reads pages and hands out
each run's rows once, from the first page that holds the run: a run met on an earlier page is
skipped whole, and only run ids outlive a page (not a key per row). :class:`RunPager` sizes the
pages: about PAGE_ROWS rows each, judged from the rows per run seen so far.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

#: Task instances and retry history come in pages of runs (each run's rows whole). The first page
#: has FIRST_PAGE_RUNS runs; later ones are sized from the rows per run seen so far, for about
#: PAGE_ROWS rows, growing at most PAGE_GROWTH-fold per page and never past MAX_PAGE_RUNS runs.
#: Fewer, fuller pages spare the source's LIMIT/OFFSET queries and the target's per-request cost.
FIRST_PAGE_RUNS = 100
PAGE_ROWS = 5000
PAGE_GROWTH = 4
MAX_PAGE_RUNS = 2000


class RunPager:
    """Where the next page of a run-paged read starts and how many runs it asks for.

    ``estimate``: ``(rows, runs)``, when the caller knows about how many rows so many runs hold
    (task instances, from the newest runs ``start`` read; retry history, from the task instances'
    try numbers): the first page is sized from that, but asks for no more than ``depth`` runs (the
    read's planned depth, when known) and FIRST_PAGE_RUNS more (runs tied in start dates move
    between pages), and no fewer than FIRST_PAGE_RUNS. ``fixed``: every page asks for that many.
    """

    def __init__(self, estimate: tuple[int, int] | None = None, depth: int = 0, *, fixed: int | None = None) -> None:
        self.offset, self.limit, self.fixed = 0, fixed or FIRST_PAGE_RUNS, fixed
        if estimate is not None and fixed is None:
            rows, runs = estimate
            deep_enough = depth + FIRST_PAGE_RUNS if depth else MAX_PAGE_RUNS
            limit = min(self._runs_for_page(runs=max(runs, 1), rows=rows), MAX_PAGE_RUNS, deep_enough)
            self.limit = max(FIRST_PAGE_RUNS, limit)

    def advance(self, rows: int) -> None:
        """Move past the page just read, which held ``rows`` rows."""
        self.offset += self.limit
        if self.fixed:
            return
        wanted = self._runs_for_page(runs=self.limit, rows=rows)
        self.limit = max(1, min(wanted, self.limit * PAGE_GROWTH, MAX_PAGE_RUNS))

    @staticmethod
    def _runs_for_page(*, runs: int, rows: int) -> int:
        """How many runs hold about PAGE_ROWS rows, when ``runs`` runs held ``rows`` (none: the most)."""
        return runs * PAGE_ROWS // rows if rows else MAX_PAGE_RUNS


@dataclass
class Page:
    """One page as :func:`run_pages` hands it out: the rows of runs not met on an earlier page
    (each natural key once), and where the read stands."""

    rows: list[dict[str, Any]]
    runs: set[str]  # the runs these rows belong to
    read: int  # rows the page held, before anything was left out
    total: int  # the DAG's runs, as this page counted them
    offset: int  # where the next page starts


def run_pages(fetch: Callable[..., dict[str, Any]], dag_id: str, list_key: str,
              natural_key: Callable[[dict[str, Any]], Hashable], pager: RunPager, *,
              more: Callable[[int, int], bool] | None = None, wanted: set[str] | None = None,
              first: dict[str, Any] | None = None, every_row: Callable[[dict[str, Any]], None] | None = None,
              ) -> Iterator[Page]:
    """Pages of ``fetch(dag_id, limit=, offset=)`` until ``more(offset, total)`` says stop (by
    default: when the DAG's ``dag_run_count`` is covered). ``wanted``: only rows of these runs
    (the set is read as it is when each page comes). ``first``: page one, when the caller already
    has it. ``every_row``: called with every row read, before any is left out."""
    seen_runs: set[str] = set()
    total = 0
    page = first
    while True:
        if page is None:
            page = fetch(dag_id, limit=pager.limit, offset=pager.offset)
        total = max(total, int(page.get("dag_run_count") or 0))
        rows = page.get(list_key) or []
        keys: set[Hashable] = set()
        kept, runs = [], set()
        for row in rows:
            if every_row is not None:
                every_row(row)
            run_id = row["run_id"]
            if run_id in seen_runs or (wanted is not None and run_id not in wanted):
                continue
            key = natural_key(row)
            if key not in keys:
                keys.add(key)
                runs.add(run_id)
                kept.append(row)
        seen_runs |= runs
        read = len(rows)
        pager.advance(read)
        yield Page(kept, runs, read, total, pager.offset)
        # let this page go before the next one is read: two pages alive at once would double the peak
        page = rows = kept = keys = None
        if not (more(pager.offset, total) if more else pager.offset < total):
            return
