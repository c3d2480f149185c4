"""What every method shares: turning committed tokens into trace events.

``Recorder`` owns the run's clock, output ids and detokenizer, and applies the two
stop rules (an EOS id, or ``max_new_tokens``) in one place, so a method that commits
several tokens per step cannot run past either.

The clock is the method's decoding time: what the recorder itself does (decoding text, building events:
``bookkeeping``) and any graph a run's step had to capture first (``core.engine.graph.BUILDS``) are left off
it, for every method alike. The run's host reads of device tensors (``core.engine.sync``) go into its extras.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from core.config import GenerationConfig
from core.engine.graph import BUILDS
from core.engine.sync import reads
from core.models import LoadedModel
from core.text import IncrementalDetokenizer
from core.trace import Clock, Notice, RunFinished, RunStarted, StepCommitted


class Recorder:
    def __init__(
        self,
        method: str,
        model: LoadedModel,
        prompt: str,
        prompt_ids: list[int],
        gen: GenerationConfig,
        options: dict | None = None,
    ) -> None:
        self.method, self.model, self.prompt, self.prompt_ids, self.gen = method, model, prompt, prompt_ids, gen
        self.options = options or {}
        self.clock = Clock()
        self.detok = IncrementalDetokenizer(model.tokenizer)
        self.output: list[int] = []
        self.steps = 0
        self.stop_reason: str | None = None
        self.reads_at_start = reads()
        self.built_s = BUILDS.seconds

    def now(self) -> float:
        """Seconds of the run so far, graph captures left out."""
        self.clock.exclude(BUILDS.seconds - self.built_s)
        self.built_s = BUILDS.seconds
        return self.clock.now()

    @contextmanager
    def bookkeeping(self):
        """Leave what runs inside (text, trace events, figures that are not decoding) off the run's clock."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.clock.exclude(time.perf_counter() - t0)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def remaining(self) -> int:
        return self.gen.max_new_tokens - len(self.output)

    def started(self) -> RunStarted:
        return RunStarted(
            method=self.method,
            model=self.model.display_name,
            device=self.model.device.type,
            dtype=str(self.model.dtype).removeprefix("torch."),
            prompt=self.prompt,
            prompt_ids=list(self.prompt_ids),
            config={**self.gen.to_dict(), **self.options},
            t=self.now(),
        )

    def commit(
        self,
        token_ids: list[int],
        forward_s: float,
        *,
        forwards: int = 1,
        drafted: int = 0,
        accepted: int = 0,
        sources: list[str] | None = None,
        texts: list[str] | None = None,
        at: float | None = None,
    ) -> StepCommitted:
        """Record one step's tokens, cut at the first EOS or at the token budget.

        ``texts``: the tokens' text pieces when they do not continue one text (SoT / SGD rows each
        detokenize their own point; default: this run's detokenizer). ``at``: the
        ``time.perf_counter()`` when the tokens were produced, for producers that run apart from
        this generator (default: now).
        """
        now = self.now() if at is None else at - self.clock.origin
        with self.bookkeeping():
            return self._commit(token_ids, now, forward_s, forwards, drafted, accepted, sources, texts)

    def _commit(self, token_ids, now, forward_s, forwards, drafted, accepted, sources, texts) -> StepCommitted:
        kept: list[int] = []
        for tid in token_ids[: self.remaining]:
            kept.append(tid)
            if tid in self.model.eos_ids:
                self.stop_reason = "eos"
                break
        if self.stop_reason is None and self.remaining - len(kept) <= 0:
            self.stop_reason = "max_new_tokens"
        self.output += kept
        self.steps += 1
        return StepCommitted(
            step=self.steps,
            token_ids=kept,
            texts=texts[: len(kept)] if texts is not None else self.detok.add(kept),
            t=now,
            forward_s=forward_s,
            forwards=forwards,
            drafted=drafted,
            accepted=min(accepted, len(kept)),
            sources=(sources or ["target"] * len(token_ids))[: len(kept)],
        )

    def answered(self, text: str) -> None:
        """A method that assembles its answer from parts (SoT / SGD: the points joined in skeleton order)
        sets the whole answer here; the output ids are its tokens."""
        self.output = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        self.stop_reason = "answered"

    def notice(self, message: str, level: str = "warning") -> Notice:
        return Notice(level=level, message=message, t=self.now())

    def finished(self, extras: dict | None = None) -> RunFinished:
        """The run's end; extras gain ``host_reads``, the reads of device tensors the run made."""
        now = self.now()
        text = self.model.tokenizer.decode(self.output, skip_special_tokens=True)
        return RunFinished(
            output_ids=list(self.output),
            text=text,
            wall_s=now,
            stop_reason=self.stop_reason or "stopped",
            t=now,
            extras={**(extras or {}), "host_reads": reads() - self.reads_at_start},
        )


def excluding_consumer_time(run: Callable[..., Iterator]) -> Callable[..., Iterator]:
    """Decorate a method generator so that event times exclude the consumer's time.

    While a page renders an event, the method's generator is suspended; that time is
    the UI's, not the method's, so it is subtracted from every later ``t`` (and the
    final ``wall_s``). Methods whose tokens come from another thread (``hf``) are not
    suspended by their consumer and are not decorated.
    """

    @functools.wraps(run)
    def wrapper(*args, **kwargs) -> Iterator:
        paused = 0.0
        for ev in run(*args, **kwargs):
            if paused:
                ev.t -= paused
                if isinstance(ev, RunFinished):
                    ev.wall_s -= paused
            t0 = time.perf_counter()
            yield ev
            paused += time.perf_counter() - t0

    return wrapper
