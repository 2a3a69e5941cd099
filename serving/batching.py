"""Adaptive batching for ``/predict``: requests that wait while the model is busy share one forward pass.

:class:`AdaptiveBatcher` queues requests and runs them in batches on one worker thread. It sets
no timer by default: an idle model takes a request at once (no latency added at low load); under
load the queue fills while a batch runs, so the next batch is as large as the load made it, up to
``max_rows`` rows (a request larger than that runs alone). ``max_wait_s`` above 0 also holds a
batch that long for company, which pays where one forward of many rows costs about one of a few
(a GPU). This is the dynamic batching of Triton and of BentoML's ``@bentoml.api(batchable=True)``,
kept inside our own ``/predict`` route (BentoML's batching sits in its API layer, which this
route bypasses).

``run_batch(items)`` gets the queued items in arrival order and returns one result per item; an
item's result may be an :class:`Exception` (bad input of that request alone), which is raised to
that caller only. An exception escaping ``run_batch`` fails every request of the batch; the
batcher goes on with the next.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import anyio


class _Pending(NamedTuple):
    item: Any
    rows: int
    future: asyncio.Future


class AdaptiveBatcher:
    """Run ``run_batch`` over what queued meanwhile, one batch at a time, in a worker thread."""

    def __init__(self, run_batch: Callable[[list], Sequence], max_rows: int = 64, max_wait_s: float = 0.0,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.run_batch, self.max_rows, self.max_wait_s = run_batch, max_rows, max_wait_s
        self.on_batch = on_batch or (lambda rows, requests: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[_Pending] = deque()
        self._arrived: asyncio.Event | None = None
        self._consumer: asyncio.Task | None = None  # held: the loop keeps only a weak reference to a task
        self._limiter = anyio.CapacityLimiter(1)  # this batcher's own thread: never queued behind other work

    async def submit(self, item: Any, rows: int = 1) -> Any:
        """Queue ``item`` (``rows`` rows of model input) and wait for its result."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first call in this event loop (a worker process has one)
            self._loop, self._queue, self._arrived = loop, deque(), asyncio.Event()
            self._consumer = loop.create_task(self._consume(self._queue, self._arrived), name="predict-batcher")
        future = loop.create_future()
        self._queue.append(_Pending(item, rows, future))
        self._arrived.set()
        return await future

    def _take(self, queue: deque[_Pending]) -> tuple[list[_Pending], int]:
        """The next batch from the head of the queue, and its rows."""
        batch, rows = [], 0
        while queue and (not batch or rows + queue[0].rows <= self.max_rows):
            pending = queue.popleft()
            if pending.future.cancelled():  # the client went away while it waited
                continue
            batch.append(pending)
            rows += pending.rows
        return batch, rows

    async def _gather(self, queue: deque[_Pending], arrived: asyncio.Event) -> None:
        """Wait up to ``max_wait_s`` for the queue to hold ``max_rows`` rows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while sum(p.rows for p in queue) < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _consume(self, queue: deque[_Pending], arrived: asyncio.Event) -> None:
        while True:
            while not queue:
                arrived.clear()
                await arrived.wait()
            if self.max_wait_s:
                await self._gather(queue, arrived)
            batch, rows = self._take(queue)
            if not batch:
                continue
            try:
                results = await anyio.to_thread.run_sync(self.run_batch, [p.item for p in batch],
                                                         limiter=self._limiter)
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except Exception as err:  # noqa: BLE001 (a bug in run_batch: fail this batch, keep serving)
                results = [err] * len(batch)
            self.on_batch(rows, len(batch))
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            # Let the callers write their responses before the next batch's thread competes for the GIL
            # (each socket write gives the GIL up; with a busy thread it can take a switch interval back).
            await asyncio.sleep(0)
