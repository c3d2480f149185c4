"""Trace files in the app: download a run, load a recorded one (uploaded or shipped in assets/traces)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.trace import RunStarted, dumps, loads

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "traces"


def trace_method(events: list) -> str:
    return next((e.method for e in events if isinstance(e, RunStarted)), "?")


def run_greedy(events: list) -> bool:
    """Was the run decoded at temperature 0 (so every verification rule acted greedily)?"""
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    return start is None or float(start.config.get("temperature", 0.0)) == 0.0


def shipped_examples(methods: tuple[str, ...]) -> list[str]:
    """File names of the shipped example traces of ``methods``."""
    if not EXAMPLES.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES.glob("*.json") if any(p.name.startswith(f"{m}-") for m in methods))


def example_prompt(methods: tuple[str, ...], fallback: str) -> str:
    """The prompt of the example a page opens on, so the prompt box shows what the example ran."""
    names = shipped_examples(methods)
    if not names:
        return fallback
    return next((e.prompt for e in loads((EXAMPLES / names[0]).read_text()) if isinstance(e, RunStarted)), fallback)


def describe_run(events: list) -> str:
    """What a recorded run ran: method, the settings that shape its output, and the prompt's start."""
    start = next(e for e in events if isinstance(e, RunStarted))
    shown = ("temperature", "max_new_tokens", "rule", "k", "depth", "layer", "block", "refine", "stages")
    settings = ", ".join(f"{k.replace('_', ' ')} {start.config[k]}" for k in shown if k in start.config)
    return f"{start.method} on '{start.prompt[:60]}{'…' if len(start.prompt) > 60 else ''}' ({settings})"


def download_trace(events: list, *, key: str, container=None) -> None:
    (container or st).download_button(
        "Download trace (JSON)",
        dumps(events),
        file_name=f"trace-{trace_method(events)}.json",
        mime="application/json",
        key=key,
    )


def load_trace_widget(
    methods: tuple[str, ...], *, key: str, preselect: bool = False, live: bool = False
) -> list | None:
    """An uploader plus the shipped examples for ``methods``; the chosen trace's events when the
    choice is new (so a later live run is not replaced by it on a rerun), else None.

    ``preselect``: on the page's first visit, choose the first shipped example, so the page shows
    something before anything is run. ``live``: the page is starting a live run, which is what it shows;
    the widget is drawn but no trace is loaded or announced. A file that is not a trace, or a trace of
    another method, gets a message, not a traceback."""
    examples = shipped_examples(methods)
    with st.expander("Replay a recorded trace"):
        uploaded = st.file_uploader("Trace JSON", type=["json"], key=f"{key}-upload")
        index = 1 if preselect and examples else 0
        example = st.selectbox("or a shipped example", ["(none)", *examples], index=index, key=f"{key}-example")
    note = st.empty()  # always drawn, so what the page draws after it keeps its place from one rerun to the next
    choice = f"upload:{uploaded.file_id}" if uploaded is not None else example
    if choice == "(none)" or st.session_state.get(f"{key}-shown") == choice:
        return None
    st.session_state[f"{key}-shown"] = choice
    if live:
        return None
    try:
        events = loads(uploaded.getvalue() if uploaded is not None else (EXAMPLES / example).read_text())
    except ValueError as exc:
        note.warning(str(exc))
        return None
    if trace_method(events) not in methods:
        note.warning(f"This is a trace of '{trace_method(events)}'; this page shows {', '.join(methods)}.")
        return None
    source = "the recorded example " + example if uploaded is None else "the uploaded trace"
    note.caption(f"Showing {source}: {describe_run(events)}. Press Run for a live run with the settings above.")
    return events
