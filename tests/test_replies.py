"""The writer's answers to async callers (ingest/replies.py): handed to the loop once per
commit, results, errors and cancellation as ``asyncio.wrap_future`` would give them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from flowdeck.ingest.replies import Replies


def test_answers_reach_the_loop_at_the_flush_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        replies = Replies()
        loop = asyncio.get_running_loop()
        calls: list[object] = []
        real = loop.call_soon_threadsafe

        def counted(callback: object, *args: object) -> object:
            calls.append(callback)
            return real(callback, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
        futures: list[Future[int]] = [Future() for _ in range(32)]
        waiters = [replies.watch(f) for f in futures]

        def writer() -> None:  # finishes every request, then flushes once
            for i, f in enumerate(futures):
                f.set_running_or_notify_cancel()
                if i == 3:
                    f.set_exception(ValueError("bad run"))
                else:
                    f.set_result(i)
            replies.flush()

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.to_thread(thread.join)
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert results[:3] == [0, 1, 2] and results[4:] == list(range(4, 32))
        assert isinstance(results[3], ValueError)
        # (to_thread's own answer comes the usual way)
        assert [getattr(c, "__name__", "") for c in calls].count("_settle") == 1

    asyncio.run(main())


def test_nothing_reaches_the_loop_before_the_flush() -> None:
    async def main() -> None:
        replies = Replies()
        future: Future[str] = Future()
        waiter = replies.watch(future)
        future.set_result("ok")
        await asyncio.sleep(0.01)
        assert not waiter.done()
        replies.flush()
        assert await waiter == "ok"

    asyncio.run(main())


def test_a_caller_that_gives_up_cancels_a_request_not_yet_taken() -> None:
    async def main() -> None:
        replies = Replies()
        future: Future[str] = Future()
        waiter = replies.watch(future)
        waiter.cancel()
        await asyncio.sleep(0)
        assert future.cancelled()
        assert not future.set_running_or_notify_cancel()  # the writer skips it
        replies.flush()  # and nothing breaks when its answer goes round

    asyncio.run(main())
