"""Drive a method's run apart from the page, with the page quiet while it is timed; then replay it into the
page's live view.

The method runs on the app's decoding thread (``core.runner.RunThread``), which queues its events. While a run
is timed, the page draws the same light thing for every run, whatever the method: one line with its tokens so
far, replaced every ``REDRAW_S`` seconds; the answer shows when the run ends. A method's own live view (a draft
tree, a lattice, a pipeline timeline, a skeleton DAG) costs the browser far more to redraw, and the browser
shares the machine with the run: drawn during the timed run, it slowed the very method it was drawing (measured
on 2 cores: 50-95% of a core for the view against ~15% while AR's answer streamed as text), and a page showed its
method at a fraction of the bench's speed. Even the streamed text kept the pages' figures a few percent under
the bench's. So the live view, and the answer growing, are drawn after the timed runs, by ``replay``: the
recorded events on their own clock, as a recorded trace replays. The figures a page shows are
the bench's (``core.metrics``: the decode clock). A page that is left (a rerun, a closed tab) cancels the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import streamlit as st

from components.answer import render_answer
from core.bench import WARMUP_TOKENS
from core.config import GenerationConfig
from core.registry import get_method
from core.runner import RunThread, on_decoder
from core.metrics import time_left
from core.trace import RunStarted, StepCommitted

REDRAW_S = 0.5
SETTLE_S = 1.0  # the browser's time to draw what came before a timed run (a warm-up's status, the last answer)
REPLAY_S = 12.0  # a replay lasts the run's own time, sped up to at most this long
FRAME_S = 0.25  # a replayed view is redrawn at most this often

Live = Callable[[list, object], None]  # (events so far, a slot to draw into)
CLOCK_NOTE = (
    "Timed as `python -m core.bench` times it: the page stays quiet during each run (one line counting tokens, "
    "the same for every method), and speeds are on the decode clock (from the first token to the last: the "
    "prompt's prefill and the page's own work are not on it)."
)


def progress_line(events: list, seconds: float) -> str:
    """'timing: 120 of 4,096 tokens, about 95 s left' (the rate so far against the token budget)."""
    tokens = sum(len(e.token_ids) for e in events if isinstance(e, StepCommitted))
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    budget = int(start.config.get("max_new_tokens", 0)) if start else 0
    left = time_left(tokens, budget, seconds) if budget else ""
    of = f" of {budget:,}" if budget else ""
    return f"timing: {tokens:,}{of} tokens{', ' + left if left else ''} (the answer shows when the run ends)"


def stop_button(key: str, container=None) -> None:
    """A button that stops the run in progress: pressing it reruns the page, which cancels the run (the decoding
    thread closes it after its current step) and says so (``components.session.sidebar``)."""
    (container or st).button(
        "Stop this run", key=f"{key}-stop", on_click=lambda: st.session_state.update(run_stopped=True)
    )


def stream_run(run: Iterator, *, key: str, container=None) -> list:
    """Every event of ``run`` (which runs in a worker thread), with one line counting its tokens and the time
    left while it is timed, and a button to stop it; the finished answer at the end. The run starts
    ``SETTLE_S`` after its lines are sent, so the browser has drawn them, and whatever came before (the warm-up's
    status, the last run's answer), before the clock starts: drawn during a run, they cost its first steps up
    to a tenth of a 64-token run, and only the method's run follows the warm-up (README, "Numbers a page
    shows")."""
    target = container or st
    status, stop, text = target.empty(), target.empty(), target.empty()
    status.caption("timing: the page stays quiet while the run is timed")
    stop_button(key, stop)
    time.sleep(SETTLE_S)
    worker, events, t0 = RunThread(run), [], time.perf_counter()
    try:
        while True:
            new = worker.drain(timeout=0)  # raises what the method raised, after its last events
            if not new and worker.done:
                break
            if new:
                events += new
                status.caption(progress_line(events, time.perf_counter() - t0))
            time.sleep(REDRAW_S)
    finally:
        worker.cancel()
    status.empty()
    stop.empty()
    render_answer(events, key=key, container=text)
    return events


def replay(events: list, live: Live, *, container=None, title: str = "") -> None:
    """Draw ``live`` over the recorded events as they came, on the run's own clock (sped up to at most
    ``REPLAY_S`` seconds), redrawing at most every ``FRAME_S``; the view is cleared at the end (the page then
    draws the finished run)."""
    timed = [e for e in events if hasattr(e, "t")]
    if not timed:
        return
    target = container or st
    end = max(e.t for e in timed)
    scale = max(1.0, end / REPLAY_S)
    note = target.caption(
        f"{title + ': ' if title else ''}replay of the timed run on its own clock"
        + (f", {scale:.1f}x faster" if scale > 1 else "")
    )
    slot, shown, t0 = target.empty(), 0, time.perf_counter()
    while shown < len(events):
        now = (time.perf_counter() - t0) * scale
        upto = next((i for i, e in enumerate(events) if getattr(e, "t", 0.0) > now), len(events))
        if upto > shown:
            live(events[:upto], slot)
            shown = upto
        if shown < len(events):
            time.sleep(FRAME_S)
    time.sleep(FRAME_S)
    slot.empty()
    note.empty()


def warm_up(start: Callable[[GenerationConfig], Iterator], gen: GenerationConfig) -> None:
    """One short untimed run (the bench's rule) on the decoding thread, so the timed run pays no one-off costs."""
    warm = GenerationConfig(max_new_tokens=min(WARMUP_TOKENS, gen.max_new_tokens), sampling=gen.sampling)
    on_decoder(lambda: [None for _ in start(warm)])


def warm_up_all(
    starts: Mapping[str, Callable[[GenerationConfig], Iterator]], gen: GenerationConfig, *, container=None
) -> None:
    """``warm_up`` for each method, under a status line (in ``container``) that stays on the page: the reader
    sees that the speeds below exclude one-off costs. A method that refuses its settings says so in one
    sentence where the page catches it; the status line then goes (no second, red box above it)."""
    names = " and ".join([", ".join(list(starts)[:-1]), list(starts)[-1]] if len(starts) > 1 else list(starts))
    box = (container or st).status(f"Warming up {names} (a short untimed run each, as the bench does)…")
    t0 = time.perf_counter()
    try:
        for start in starts.values():
            warm_up(start, gen)
    except BaseException:
        box.empty()
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
    warm_area=None,
) -> tuple[list, list]:
    """Both warmed up (the status line in ``warm_area``), then the method's timed run in the left column and
    AR's on the same prompt in the right, both with the page quiet; then the method's live view replayed above
    them; returns both event lists."""
    ar = lambda g: get_method("ar").run(model, prompt, g)  # noqa: E731
    warm_up_all({title: start, "AR": ar}, gen, container=warm_area)
    view = st.container()
    left, right = st.columns(2)
    left.subheader(title)
    events = stream_run(start(gen), key=f"{key}-run", container=left)
    right.subheader("AR, same prompt")
    ar_events = stream_run(ar(gen), key=f"{key}-ar", container=right)
    if live is not None:
        replay(events, live, container=view, title=title)
    return events, ar_events
