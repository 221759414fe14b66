"""Stopping asyncio tasks for good.

On Python 3.11, `asyncio.wait_for` can swallow a cancellation that arrives just as the awaited
operation completes (python/cpython#86296, fixed in 3.12), and a `while True` task then carries on
as if never cancelled: a single `cancel()` followed by an unbounded wait hangs. `cancel_all` keeps
cancelling until every task has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

_RECANCEL_AFTER = 0.2


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel `tasks` and wait until all have finished, cancelling again any that carried on."""
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=_RECANCEL_AFTER)
        pending = [task for task in pending if not task.done()]
