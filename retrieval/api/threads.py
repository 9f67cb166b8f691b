"""Awaiting blocking calls on the API's thread pools (model, store, I/O)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


async def run_on(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """Await ``fn(*args)`` run on one of ``executor``'s threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args))
