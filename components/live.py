"""Drive a method's event generator and render the answer as it streams."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import streamlit as st

from components.answer import render_answer
from core.trace import RunFinished, StepCommitted


def stream_run(run: Iterator, *, key: str, container=None, on_event: Callable[[object], None] | None = None) -> list:
    """Consume ``run`` into a list of events, redrawing the answer after each step.

    ``on_event`` sees every event as it arrives (a page draws its live view there).
    """
    placeholder = (container or st).empty()
    events: list = []
    for ev in run:
        events.append(ev)
        if on_event is not None:
            on_event(ev)
        if isinstance(ev, StepCommitted | RunFinished):
            render_answer(events, key=key, container=placeholder)
    return events


def run_beside_ar(
    run: Iterator,
    *,
    model,
    prompt: str,
    gen,
    key: str,
    title: str,
    live: Callable[[object, object], None] | None = None,
) -> tuple[list, list]:
    """The method's run in the left column (``live(event, slot)`` draws its live view in a slot above the
    answer, cleared when the run ends: the page draws the finished view itself), then AR on the same prompt
    in the right column; returns both event lists."""
    from core.methods import get_method

    left, right = st.columns(2)
    left.subheader(title)
    slot = left.empty()
    events = stream_run(
        run, key=f"{key}-run", container=left, on_event=(lambda ev: live(ev, slot)) if live is not None else None
    )
    slot.empty()
    right.subheader("AR, same prompt")
    ar = stream_run(get_method("ar").run(model, prompt, gen), key=f"{key}-ar", container=right)
    return events, ar
