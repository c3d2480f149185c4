"""What every method page shares: a recorded trace until Run, then the method's live run beside AR on
the same prompt; afterwards the method's answer strip, metrics and download beside AR's. A page
adds only its own controls, its live view and its own panels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import streamlit as st

from components.answer import render_metrics, render_notices, render_token_strip, settings_note, takeaway
from components.cost import render_cost_panel
from components.live import CLOCK_NOTE, Live, run_beside_ar
from components.race import render_race
from components.traces import download_trace, load_trace_widget, trace_method
from core.config import GenerationConfig
from core.registry import RUN_ERRORS


@dataclass
class Shown:
    """What a method page shows: the method's events and AR's beside them (None: nothing yet), and ``box``, the
    place of the results (a live run's or a recorded trace's). A new run empties it at once, so nothing of the
    last run or of the example lingers, greyed, under the new one; the run itself draws in a place of its own
    above it (Streamlit sends only the last of two changes to one place in quick succession, so emptying the
    place the run then draws into would not reach the page)."""

    method: list | None
    ar: list | None
    box: object


def method_runs(
    key: str,
    methods: tuple[str, ...],
    *,
    run: bool,
    start: Callable[[GenerationConfig], Iterator],
    model,
    prompt: str,
    gen: GenerationConfig,
    title: str,
    live: Live | None = None,
) -> Shown:
    """The method's events and AR's to show: a live run when ``run`` (``start(gen)`` makes the method's event
    generator), which replaces whatever was shown; else the page's last run or a recorded trace of one of
    ``methods``. The page draws its results with ``with shown.box.container():``."""
    state = st.session_state.setdefault(f"{key}_results", {})
    recorded = load_trace_widget(methods, key=f"{key}-trace", preselect=not state, live=run)
    if recorded is not None:
        state.clear()
        state["method"] = recorded
    warm_area, running, box = st.container(), st.empty(), st.empty()
    if run:
        state.clear()
        box.empty()  # at once (a place of its own, which nothing else fills during the run: see ``Shown``)
        try:
            with running.container():
                state["method"], state["ar"] = run_beside_ar(
                    start, model=model, prompt=prompt, gen=gen, key=key, title=title, live=live, warm_area=warm_area
                )
        except RUN_ERRORS as exc:
            box.warning(str(exc))
        running.empty()
    return Shown(state.get("method"), state.get("ar"), box)


def render_beside_ar(
    key: str,
    events: list,
    ar: list | None,
    *,
    caption: str = "",
    marks: bool = False,
    extra: Callable[[], None] | None = None,
    model=None,
    controls: dict | None = None,
) -> None:
    """The run's takeaway line, the method's notices, answer strip, metrics (``extra`` adds the method's own) and
    download, AR's beside; then the race of the two runs and the cost model that explains the speedup
    (``model``: the loaded model, whose measured v(n) the cost model uses). ``controls``: the settings the
    page's controls hold now (names as in the run's config), so a run made with others says so."""
    if ar:
        st.markdown(f"**{takeaway(events, ar)}**")
    note = settings_note(events, controls or {})
    if note:
        st.info(note)
    render_notices(events)
    if ar:
        st.caption(CLOCK_NOTE)
    left, right = st.columns(2)
    with left:
        if caption:
            st.markdown(caption)
        render_token_strip(events, key=f"{key}-strip", marks=marks)
        render_metrics(events, key=f"{key}-metrics", ar_events=ar)
        if extra is not None:
            extra()
        download_trace(events, key=f"{key}-dl")
    with right:
        if ar:
            st.markdown("**AR, same prompt and settings**")
            render_token_strip(ar, key=f"{key}-ar-strip")
            render_metrics(ar, key=f"{key}-ar-metrics")
    if ar:
        render_race({trace_method(events): events, "ar": ar}, key=f"{key}-race")
    render_cost_panel(events, ar, model, key=f"{key}-cost")
