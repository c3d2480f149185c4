"""Runs a method's event generator in a worker thread, apart from whoever renders its events.

The worker pushes every event into a queue as the method yields it, so the method is never
suspended while a page draws; its event times are its own. A consumer drains the queue at its
own pace (``drain``: what has arrived, waiting up to a timeout for the first). ``cancel`` asks
the worker to stop after the event in hand: the generator is closed in the worker's own thread,
so a method's ``finally`` (e.g. ``hf`` stopping transformers' ``generate``) runs, and an
abandoned run stops instead of decoding on to its token budget.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_DONE = object()


class RunThread:
    def __init__(self, events: Iterator, name: str = "decoding-lab-run") -> None:
        self.events = events
        self.queue: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.error: BaseException | None = None
        self.done = False
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
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
