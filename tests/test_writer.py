"""The single writer's grouping: what goes into one commit."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest

from flowdeck.ingest.writer import Writer
from flowdeck.runs import RunRecord
from flowdeck.store import Store, WritePlan, open_store
from flowdeck.store.base import BatchRow
from tests.conftest import run

COMMIT_SECONDS = 0.4


class SlowStore:
    """A real store whose commits take COMMIT_SECONDS and are counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.groups: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def upsert_runs(
        self, run_ids: Collection[str], plan: Callable[[dict[str, RunRecord]], WritePlan]
    ) -> list[BatchRow]:
        self.groups.append(len(run_ids))
        time.sleep(COMMIT_SECONDS)
        return self.store.upsert_runs(run_ids, plan)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[SlowStore]:
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    store.migrate()
    yield SlowStore(store)
    store.close()


def start(slow: SlowStore, max_linger: float) -> Writer:
    writer = Writer(slow, max_linger=max_linger)  # type: ignore[arg-type]
    writer.start()
    return writer


def four_clients(writer: Writer) -> list[str]:
    """One request starts a commit; four clients queue behind it and go in the next."""
    first = writer.submit([run("warm-up")])
    time.sleep(COMMIT_SECONDS / 4)
    names = ["a", "b", "c", "d"]
    queued = [writer.submit([run(n, batch_id="b1")]) for n in names]
    for f in [first, *queued]:
        f.result()
    return names


def post_again(writer: Writer, names: list[str]) -> None:
    """The four write again, all but one a moment late."""
    again = [writer.submit([run(names[0], batch_id="b2")])]
    time.sleep(0.02)
    again += [writer.submit([run(n, batch_id="b2")]) for n in names[1:]]
    for f in again:
        f.result()
    writer.stop()


def test_a_group_waits_briefly_for_clients_it_just_answered(slow: SlowStore) -> None:
    writer = start(slow, max_linger=1.0)
    post_again(writer, four_clients(writer))
    assert slow.groups == [1, 4, 4]


def test_without_linger_the_late_clients_make_a_second_group(slow: SlowStore) -> None:
    writer = start(slow, max_linger=0.0)
    post_again(writer, four_clients(writer))
    assert slow.groups == [1, 4, 1, 3]


def waits_of(writer: Writer) -> list[bool]:
    """Every wait of the writer for more of a group, as it ends: True where the linger ran
    out. (Read off the writer, not a clock: a loaded machine makes timings lie.)"""
    out: list[bool] = []
    take = writer._take

    def spied(block: bool = True, deadline: float | None = None) -> object:
        if not (block and deadline is not None):
            return take(block, deadline)
        try:
            item = take(block, deadline)
        except queue.Empty:
            out.append(True)
            raise
        out.append(False)
        return item

    writer._take = spied  # type: ignore[method-assign]
    return out


def test_a_lone_client_never_waits(slow: SlowStore) -> None:
    writer = start(slow, max_linger=1.0)
    waits = waits_of(writer)
    for i in range(3):
        writer.submit([run(f"p{i}")]).result()
    writer.stop()
    assert slow.groups == [1, 1, 1]
    # No lingering, which would add half a commit to each.
    assert waits == []


def test_a_group_stops_waiting_once_everybody_is_back(slow: SlowStore) -> None:
    writer = start(slow, max_linger=1.0)
    names = four_clients(writer)
    waits = waits_of(writer)
    again = [writer.submit([run(n, batch_id="b2")]) for n in names]
    for f in again:
        f.result()
    writer.stop()
    assert slow.groups == [1, 4, 4]
    # All four were back at once: the group is taken without waiting out the linger.
    assert True not in waits
