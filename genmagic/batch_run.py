""":meth:`Engine.run_many`: many requests, each through what :meth:`Engine.run` does, the misses
run together.

::

    every request (256 at a time): screening (a block is that row's result) ─ cache (a hit is that row's result)
    their misses, grouped by loaded model:
        backend.generate_batch (optional)  padded batches (``plan_batches`` sorts and sizes them)
        backend.remote                     concurrent requests, at most ``concurrency`` at once
        otherwise                          one at a time
    every row: output checks ─ finish ─ one history row ─ progress(index, result)

A row that fails (blocked, an error) is that row's result, never an exception. An interrupt
(KeyboardInterrupt, or a row's sink cancelled without the backend having been asked to stop
it) keeps every finished row, recorded; the rows not run come back with status ``interrupted``
and no history row, so running the same requests again resumes from the cache.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .request import NullSink
from .results import result_class

if TYPE_CHECKING:
    from .engine import Engine, _Run
    from .request import Request, Sink
    from .results import Result

DEFAULT_CONCURRENCY = 4
WINDOW = 256  # rows screened and looked up in the cache before their misses run
NOT_RUN = "not run: interrupted"


class _Interrupted(Exception):
    """A row was interrupted (not by its own sink): stop starting rows."""


class _Stoppable:
    """A row's sink that also reads as cancelled once the whole batch is stopped."""

    def __init__(self, inner: Any, stop: threading.Event, heard: threading.Event | None = None) -> None:
        self.inner = inner
        self.stop = stop
        self.heard = heard  # set at the row's first event
        self.retracts = getattr(inner, "retracts", True)

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set() or bool(getattr(self.inner, "cancelled", False))

    def emit(self, event: Any) -> None:
        if self.heard is not None:
            self.heard.set()
        self.inner.emit(event)


def run_many(
    engine: Engine,
    requests: Sequence[Request],
    *,
    sinks: Sequence[Sink | None] | None,
    progress: Callable[[int, Result], None] | None,
    cache: bool,
    finish: Callable[[Result], None] | Sequence[Callable[[Result], None] | None] | None,
    safety: str | None,
    concurrency: int | None,
    batch_size: int | None,
    where: Mapping[str, Any],
) -> list[Result]:
    if sinks is not None and len(sinks) != len(requests):
        raise ValueError(f"run_many: {len(sinks)} sinks for {len(requests)} requests")
    row_sinks: list[Any] = [s if s is not None else NullSink() for s in (sinks or [None] * len(requests))]
    results: list[Result | None] = [None] * len(requests)

    def done(index: int, result: Result) -> None:
        results[index] = result
        if progress is not None:
            progress(index, result)

    try:
        for first in range(0, len(requests), WINDOW):  # screening a window, then its misses: the bar moves
            groups: dict[tuple[Any, ...], list[tuple[int, _Run]]] = {}
            for index in range(first, min(first + WINDOW, len(requests))):
                row_finish = finish[index] if isinstance(finish, Sequence) else finish  # one per row, or shared
                run = engine._prepare(requests[index], cache, safety, where, row_finish)
                if run.blocked is not None:
                    run.blocked.error = run.reason
                    done(index, run.blocked)
                elif run.served is not None:
                    done(index, run.served)
                else:
                    key = engine.models._key(run.spec, run.request.options, run.fingerprint)
                    groups.setdefault(key, []).append((index, run))
            for group in groups.values():
                _run_group(engine, group, row_sinks, concurrency, batch_size, done)
    except (KeyboardInterrupt, _Interrupted):
        pass
    return [result if result is not None else
            result_class(requests[i].kind)(request=requests[i], status="interrupted", error=NOT_RUN)
            for i, result in enumerate(results)]


def _run_group(engine: Engine, group: list[tuple[int, _Run]], sinks: list[Any], concurrency: int | None,
               batch_size: int | None, done: Callable[[int, Result], None]) -> None:
    """The misses of one loaded model: batches, concurrent requests, or one at a time."""
    backend = group[0][1].backend
    if getattr(backend, "remote", False):
        _concurrent(engine, group, sinks, concurrency or DEFAULT_CONCURRENCY, done)
    elif callable(getattr(backend, "generate_batch", None)):
        _batched(engine, group, sinks, batch_size, done)
    else:
        for index, run in group:
            _check_stop(sinks[index])
            _finished(done, index, engine._generate(run, sinks[index], raise_errors=False), sinks[index])


def _check_stop(sink: Any) -> None:
    """A row whose sink is cancelled before it starts is not run (a Stop for the whole batch)."""
    if getattr(sink, "cancelled", False):
        raise _Interrupted


def _finished(done: Callable[[int, Result], None], index: int, result: Result, sink: Any) -> None:
    """Hand over a finished row; an interrupted row its own sink did not stop means Ctrl-C: stop."""
    done(index, result)
    if result.status == "interrupted" and not getattr(sink, "cancelled", False):
        raise _Interrupted


def _batched(engine: Engine, group: list[tuple[int, _Run]], sinks: list[Any], batch_size: int | None,
             done: Callable[[int, Result], None]) -> None:
    """Padded batches through ``backend.generate_batch``; ``plan_batches`` (optional) orders
    and sizes them (by length, compatible options together)."""
    first_index, first = group[0]
    backend = first.backend
    try:
        loaded, load_s = engine._load(first, sinks[first_index])
    except Exception as err:
        for index, run in group:
            done(index, engine._failed(run, err, None))
        return
    requests = [run.request for _, run in group]
    plan = getattr(backend, "plan_batches", None)
    if callable(plan):
        chunks: list[list[int]] = plan(loaded, requests, batch_size)
    else:
        size = batch_size or 8
        chunks = [list(range(k, min(k + size, len(requests)))) for k in range(0, len(requests), size)]
    for chunk in chunks:
        rows = [group[j] for j in chunk]
        for index, _ in rows:
            _check_stop(sinks[index])
        screenings = [run.screening(sinks[index]) for index, run in rows]
        row_sinks = [screening or sinks[index] for screening, (index, _) in zip(screenings, rows, strict=True)]
        started = time.perf_counter()
        try:
            out = backend.generate_batch(loaded, [run.request for _, run in rows], row_sinks)
        except Exception as err:
            for (index, run), screening in zip(rows, screenings, strict=True):
                done(index, engine._failed(run, err, screening))
            continue
        elapsed = time.perf_counter() - started
        stop = False
        for (index, run), screening, result in zip(rows, screenings, out, strict=True):
            result.timings.setdefault("batch_rows", float(len(rows)))
            result.timings.setdefault("batch_generate", elapsed)
            try:
                _finished(done, index, engine._complete(run, result, screening, load_s), sinks[index])
            except (KeyboardInterrupt, _Interrupted):
                stop = True  # every row of this batch is recorded first
        if stop:
            raise _Interrupted


def _concurrent(engine: Engine, group: list[tuple[int, _Run]], sinks: list[Any], concurrency: int,
                done: Callable[[int, Result], None]) -> None:
    """A served model: at most ``concurrency`` requests in flight; rows finish (output checks,
    history) on this thread as they come back. An interrupt stops the requests in flight at their
    next token (their partial rows are recorded) and starts no more."""
    first_index, first = group[0]
    try:
        loaded, load_s = engine._load(first, sinks[first_index])  # once, before the threads
    except Exception as err:
        for index, run in group:
            done(index, engine._failed(run, err, None))
        return
    stop = threading.Event()

    def call(run: _Run, sink: Any) -> tuple[Any, Any]:
        if sink.cancelled:
            return None, None
        screening = run.screening(sink)
        try:
            return run.backend.generate(loaded, run.request, screening or sink), screening
        except Exception as err:
            return err, screening

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="genmagic-row")
    futures: dict[concurrent.futures.Future[Any], tuple[int, _Run]] = {}
    handled: set[concurrent.futures.Future[Any]] = set()

    def hand_over(future: concurrent.futures.Future[Any]) -> None:
        handled.add(future)
        index, run = futures[future]
        outcome, screening = future.result()
        if outcome is None:
            return  # not started: the batch was stopped
        if isinstance(outcome, Exception):
            done(index, engine._failed(run, outcome, screening))
        else:
            _finished(done, index, engine._complete(run, outcome, screening, load_s), sinks[index])

    try:
        # The first row alone until it streams (or ends): a client's first request imports modules
        # lazily, and two threads importing a package at once can see it half initialised.
        heard = threading.Event()
        first_future = pool.submit(call, first, _Stoppable(sinks[first_index], stop, heard))
        futures[first_future] = (first_index, first)
        while not heard.wait(0.05) and not first_future.done():
            pass
        for index, run in group[1:]:
            futures[pool.submit(call, run, _Stoppable(sinks[index], stop))] = (index, run)
        for future in concurrent.futures.as_completed(futures):
            hand_over(future)
    except (KeyboardInterrupt, _Interrupted):
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:  # the rows in flight stopped at their next token: recorded as interrupted
            if future not in handled and future.done() and not future.cancelled():
                try:
                    hand_over(future)
                except (KeyboardInterrupt, _Interrupted):
                    pass  # every row that ran is recorded
        raise _Interrupted from None
    pool.shutdown(wait=True)
