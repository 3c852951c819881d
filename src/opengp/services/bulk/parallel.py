"""Work on a stream of chunks in other processes, results in order, memory bounded.

An import's checking and preparing are pure and most of its CPU; the loading process
writes while other processes work on the next chunks.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Protocol, TypeVar

# Chunks in flight per worker: enough to keep the workers busy while the consumer writes
# (or otherwise does not ask for the next result for a while).
AHEAD = 8

In = TypeVar("In")
Out = TypeVar("Out")


class Mapper(Protocol):
    def __call__(self, function: Callable[[In], Out], chunks: Iterable[In], /) -> Iterator[Out]: ...


def _inline(function: Callable[[In], Out], chunks: Iterable[In]) -> Iterator[Out]:
    return (function(chunk) for chunk in chunks)


def _noop() -> None:
    return None


@contextmanager
def ordered_map(workers: int) -> Iterator[Mapper]:
    """A `map(function, chunks)` that runs in `workers` processes, a few chunks ahead of
    the consumer, yielding results in order; with `workers` ≤ 1, in this process.

    The processes are forked when the context opens, before the caller opens a database
    transaction, and run only the pure `function` (never the parent's connections). Only
    single-threaded callers (`opengp import`) ask for workers: the server's job runner
    works in its own thread (a fork there could copy a held lock)."""
    if workers <= 1:
        yield _inline
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pool.submit(_noop).result()  # forks every worker now

        def run(function: Callable[[In], Out], chunks: Iterable[In]) -> Iterator[Out]:
            window: deque[Future[Out]] = deque()
            try:
                for chunk in chunks:
                    window.append(pool.submit(function, chunk))
                    if len(window) >= AHEAD * workers:
                        yield window.popleft().result()
                while window:
                    yield window.popleft().result()
            finally:
                for future in window:
                    future.cancel()

        yield run
