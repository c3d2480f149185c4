"""Where the host meets the device: the one hook every deliberate read of a device tensor goes through, uploads
that do not wait for the device, and step timings measured on the device.

On an accelerator a read (``.tolist()``, ``int(t)``, ``bool(t)``) stops the host until the device has finished
everything queued before it, so a decode step that reads a dozen times spends most of its time waiting
(docs/methods.md, "GPU engine"). The decode loops read through ``host`` only, which counts every read on the
calling thread: ``reads()`` is the count so far, a run reports its reads per step, and the tests hold ar to one
read per token and a speculative step to two. Uploading host data with a plain ``torch.tensor(..., device=cuda)``
synchronises too (a copy from pageable memory waits for the stream); ``upload`` stages it in pinned memory and
copies without waiting. ``Stopwatch`` marks points of a step with device events and turns them into seconds
after the run, so draft and verify times are the device's, not the host's launch times.
"""

from __future__ import annotations

import threading
import time

import torch

_COUNT = threading.local()


def reads() -> int:
    """Host reads of device tensors made through ``host`` on this thread so far."""
    return getattr(_COUNT, "n", 0)


def host(t: torch.Tensor) -> list | int | float | bool:
    """``t.tolist()``: the one way a decode loop reads a device tensor (counted)."""
    _COUNT.n = reads() + 1
    return t.tolist()


def upload(data, device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Host values (a list, nested lists or a number, or a CPU tensor) as a tensor on ``device``; on CUDA through
    pinned memory, without waiting for the device (the caching host allocator keeps the staging buffer until the
    copy ran)."""
    t = data if isinstance(data, torch.Tensor) else torch.tensor(data, dtype=dtype)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


class Stopwatch:
    """Named intervals of a run measured on the device: ``mark()`` records a point (a CUDA event on CUDA, the
    host clock elsewhere, where every op has finished when it returns), ``add(name, a, b)`` books the interval
    between two marks, and ``seconds()`` resolves every booked interval once the run is over (one wait for the
    device then, none per step)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.booked: list[tuple[str, object, object]] = []

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def add(self, name: str, a, b) -> None:
        self.booked.append((name, a, b))

    def seconds(self) -> dict[str, float]:
        """Total seconds per name over the booked intervals."""
        if self.cuda and self.booked:
            self.booked[-1][2].synchronize()
        out: dict[str, float] = {}
        for name, a, b in self.booked:
            out[name] = out.get(name, 0.0) + (a.elapsed_time(b) / 1000 if self.cuda else b - a)
        return out
