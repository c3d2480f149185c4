"""The app's one decoding thread, and runs on it apart from whoever renders their events.

Why one thread: PyTorch's CPU kernels run on an OpenMP team per thread that calls them. When a
process has more OpenMP threads than cores, libgomp stops spinning between parallel regions and
every small decode step pays a sleep and a wake: the same ``ar`` run halves its speed once a second
thread has run torch ops (figures: docs/architecture.md, "Threads"). A Streamlit app runs each rerun
in a new script thread, so loading, warming up and decoding there gave a page a quarter of the bench's speed. Here every torch call of the app (model load, warm-up,
runs, quality proxies, the benchmark) goes to one process-wide thread (``on_decoder``), one at a
time: runs of several sessions queue rather than halve each other's timings.

``RunThread`` runs a method's event generator on that thread and queues its events, so the method
is never suspended while a page draws; its event times are its own. A consumer drains the queue at
its own pace. ``cancel`` asks the run to stop after the event in hand: the generator is closed on
the decoding thread, so a method's ``finally`` (``hf`` stopping transformers' ``generate``) runs and
an abandoned run stops instead of decoding on to its token budget.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoding-lab")


def on_decoder(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on the decoding thread; its result, or what it raised."""
    if threading.current_thread().name.startswith("decoding-lab"):
        return fn(*args, **kwargs)
    return _DECODER.submit(fn, *args, **kwargs).result()


class RunThread:
    def __init__(self, events: Iterator) -> None:
        self.events = events
        self.queue: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.error: BaseException | None = None
        self.done = False
        self.future = _DECODER.submit(self._work)

    def _work(self) -> None:
        try:
            if self.cancelled.is_set():  # left before its turn on the decoding thread came
                return
            for ev in self.events:
                self.queue.put(ev)
                if self.cancelled.is_set():
                    break
        except BaseException as exc:  # handed to the consumer by ``drain``
            self.error = exc
        finally:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()
            self.queue.put(_DONE)

    def drain(self, timeout: float) -> list:
        """Events that have arrived, waiting up to ``timeout`` s for the first; sets ``done`` at the end and
        re-raises, in the consumer's thread, what the method raised (once every event before it is handed over)."""
        out = []
        try:
            item = self.queue.get(timeout=timeout)
            while True:
                if item is _DONE:
                    self.done = True
                    break
                out.append(item)
                item = self.queue.get_nowait()
        except queue.Empty:
            pass
        if self.done and self.error is not None and not out:
            raise self.error
        return out

    def cancel(self) -> None:
        self.cancelled.set()

    def __iter__(self) -> Iterator:
        """Every event, in order (a consumer with no redraw rate of its own)."""
        while True:
            batch = self.drain(timeout=0.5)
            yield from batch
            if self.done and not batch:
                return


class Stopped(Exception):
    """Long work given up by the one who started it (a page left, a Stop pressed)."""


def call_with_progress(fn: Callable[..., T], *args, report: Callable, poll_s: float = 0.3, **kwargs) -> T:
    """``fn(*args, progress=..., **kwargs)`` on the decoding thread, its progress calls handed to ``report``
    on the caller's thread as they come (a page's progress bar cannot be drawn from another thread). If the
    caller is interrupted (a page left or stopped), ``fn`` stops at its next progress call (``Stopped``)."""
    items: queue.Queue = queue.Queue()
    stop = threading.Event()

    def progress(*item) -> None:
        if stop.is_set():
            raise Stopped("stopped")
        items.put(item)

    future = _DECODER.submit(fn, *args, progress=progress, **kwargs)
    try:
        while not (future.done() and items.empty()):
            try:
                report(*items.get(timeout=poll_s))
            except queue.Empty:
                pass
    finally:
        stop.set()
    return future.result()
