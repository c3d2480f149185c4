"""Drive a method's event generator and render the answer as it streams."""

from __future__ import annotations

from collections.abc import Iterator

import streamlit as st

from components.answer import render_answer
from core.trace import RunFinished, StepCommitted


def stream_run(run: Iterator, *, key: str, container=None) -> list:
    """Consume ``run`` into a list of events, redrawing the answer after each step."""
    placeholder = (container or st).empty()
    events: list = []
    for ev in run:
        events.append(ev)
        if isinstance(ev, StepCommitted | RunFinished):
            render_answer(events, key=key, container=placeholder)
    return events
