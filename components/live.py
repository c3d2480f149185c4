"""Drive a method's run apart from the page, and render it at a bounded rate.

The method runs on the app's decoding thread (``core.runner.RunThread``) that queues its events; the page
drains the queue every ``REDRAW_S`` seconds and redraws what changed: the answer as plain text
(one element replaced, not a coloured strip rebuilt per token) and the page's own live view. The
UI's work during a run is thus a few cheap redraws a second, so the speed a page shows is the
method's, as the bench measures it. Strips and charts are drawn when the run has ended. A page
that is left (a rerun, a closed tab) cancels the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import streamlit as st

from components.answer import answer_text, render_answer
from core.bench import WARMUP_TOKENS
from core.config import GenerationConfig
from core.registry import get_method
from core.runner import RunThread, on_decoder

REDRAW_S = 0.5

Live = Callable[[list, object], None]  # (events so far, a slot to draw into)


def stream_run(run: Iterator, *, key: str, container=None, live: Live | None = None) -> list:
    """Every event of ``run`` (which runs in a worker thread), drawn as it goes; the finished answer at the end."""
    target = container or st
    view = target.empty() if live is not None else None
    text = target.empty()
    worker, events = RunThread(run), []
    try:
        while True:
            new = worker.drain(timeout=0)  # raises what the method raised, after its last events
            if not new and worker.done:
                break
            if new:
                events += new
                text.text(answer_text(events) + " ▌")
                if live is not None:
                    live(events, view)
            time.sleep(REDRAW_S)
    finally:
        worker.cancel()
    if view is not None:
        view.empty()
    render_answer(events, key=key, container=text)
    return events


def warm_up(start: Callable[[GenerationConfig], Iterator], gen: GenerationConfig) -> None:
    """One short untimed run (the bench's rule) on the decoding thread, so the timed run pays no one-off costs."""
    warm = GenerationConfig(max_new_tokens=min(WARMUP_TOKENS, gen.max_new_tokens), sampling=gen.sampling)
    on_decoder(lambda: [None for _ in start(warm)])


def warm_up_all(
    starts: Mapping[str, Callable[[GenerationConfig], Iterator]], gen: GenerationConfig, *, container=None
) -> None:
    """``warm_up`` for each method, under a status line (in ``container``) that stays on the page: the reader
    sees that the speeds below exclude one-off costs (a spinner shows only for blocks over half a second)."""
    names = " and ".join([", ".join(list(starts)[:-1]), list(starts)[-1]] if len(starts) > 1 else list(starts))
    box = (container or st).status(f"Warming up {names} (a short untimed run each, as the bench does)…")
    t0 = time.perf_counter()
    try:
        for start in starts.values():
            warm_up(start, gen)
    except BaseException:
        box.update(label=f"Warming up {names} failed", state="error")
        raise
    box.update(
        label=f"Warmed up {names} in {time.perf_counter() - t0:.1f} s: one untimed run of at most "
        f"{WARMUP_TOKENS} tokens each, not counted in the speeds below",
        state="complete",
    )


def run_beside_ar(
    start: Callable[[GenerationConfig], Iterator],
    *,
    model,
    prompt: str,
    gen: GenerationConfig,
    key: str,
    title: str,
    live: Live | None = None,
) -> tuple[list, list]:
    """Both warmed up, then the method's run in the left column (``live`` draws its live view above the
    answer, cleared when the run ends: the page draws the finished view itself), then AR on the same
    prompt in the right column; returns both event lists."""
    ar = lambda g: get_method("ar").run(model, prompt, g)  # noqa: E731
    warm_up_all({title: start, "AR": ar}, gen)
    left, right = st.columns(2)
    left.subheader(title)
    events = stream_run(start(gen), key=f"{key}-run", container=left, live=live)
    right.subheader("AR, same prompt")
    return events, stream_run(ar(gen), key=f"{key}-ar", container=right)
