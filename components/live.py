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
