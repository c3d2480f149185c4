"""Answers from trace events: streaming text, per-token colouring by step, metrics."""

from __future__ import annotations

import html

import streamlit as st

from core.metrics import decode_speedup, format_speedup, summarize
from core.skeleton import join_points
from core.trace import NodeStep, Notice, PipelineTick, RunFinished, RunStarted, SkeletonReady, StepCommitted, TreeStep

_PALETTE = ["#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa"]


def point_texts(events: list) -> tuple[list[str], list[str]] | None:
    """SoT / SGD: each point's title and the text decoded for it so far; None for other runs."""
    ready = next((e for e in events if isinstance(e, SkeletonReady)), None)
    if ready is None:
        return None
    parts = [""] * len(ready.titles)
    for e in events:
        if isinstance(e, NodeStep):
            for node, piece in zip(e.nodes, e.texts, strict=True):
                parts[node] += piece
    return ready.titles, parts


def render_points(events: list, *, key: str) -> None:
    """SoT / SGD's answer as it was made: each point's text under its own heading (their tokens were decoded
    side by side, so one strip of tokens would interleave them), then the assembled answer."""
    titles, parts = point_texts(events)
    blocks = "".join(
        f"<div class='dl-point'><div class='dl-point-title' style='font-weight:600'>{i}. {html.escape(t)}</div>"
        f"<div>{html.escape(p.strip()) or '&nbsp;'}</div></div>"
        for i, (t, p) in enumerate(zip(titles, parts, strict=True), 1)
    )
    st.markdown(f"<div class='dl-points' data-key='{html.escape(key)}'>{blocks}</div>", unsafe_allow_html=True)
    with st.expander("The assembled answer"):
        render_answer(events, key=f"{key}-assembled")


def render_answer_strip(events: list, *, key: str, marks: bool = False) -> None:
    """A finished run's answer: point by point for SoT / SGD, else every token coloured by its step."""
    if point_texts(events) is not None:
        render_points(events, key=key)
    else:
        render_token_strip(events, key=key, marks=marks)


def answer_text(events: list) -> str:
    """The final text, or the text so far: in commit order, or point by point for SoT / SGD."""
    end = next((e for e in events if isinstance(e, RunFinished)), None)
    if end is not None:
        return end.text
    points = point_texts(events)
    if points is not None:
        return join_points(*points)
    return "".join(piece for e in events if isinstance(e, StepCommitted) for piece in e.texts)


def render_answer(events: list, *, key: str, container=None) -> None:
    """The answer so far as text (call again with more events to stream)."""
    target = container or st
    text = answer_text(events)
    done = any(isinstance(e, RunFinished) for e in events)
    target.markdown(
        f"<div class='dl-answer' data-key='{html.escape(key)}'>{html.escape(text) or '&nbsp;'}"
        f"{'' if done else ' ▌'}</div>",
        unsafe_allow_html=True,
    )


def _mark(source: str) -> str:
    """A one-character mark for a token's source: b (base head), i (BPD head i), d (draft), ..."""
    return source.removeprefix("head ") if source.startswith("head ") else {"base": "b"}.get(source, source[:1])


def render_token_strip(events: list, *, key: str, marks: bool = False) -> None:
    """Every token in a box coloured by the step that committed it; hover shows step and source;
    ``marks`` also prints each token's source as a small subscript."""
    spans = []
    for e in events:
        if not isinstance(e, StepCommitted):
            continue
        colour = _PALETTE[e.step % len(_PALETTE)]
        for piece, source in zip(e.texts, e.sources or ["target"] * len(e.texts), strict=True):
            title = html.escape(f"step {e.step}, {source}")
            text = html.escape(piece).replace("\n", "↵<br>") or "·"
            if marks:
                text += f"<sub style='color:#475569;font-size:0.6em'>{html.escape(_mark(source))}</sub>"
            spans.append(
                f"<span title='{title}' style='background:{colour};border-radius:3px;padding:0 1px'>{text}</span>"
            )
    swatches = "".join(
        f"<span style='background:{c};border-radius:3px;padding:0 6px;margin-right:2px'>&nbsp;</span>"
        for c in _PALETTE[:3]
    )
    key_line = (
        f"<div class='dl-key' style='font-size:0.8em;color:#52525b'>colour key: {swatches} one colour per step, "
        "cycling, so a run of one colour is one step's tokens (a multi-token step is an accepted draft); "
        "hover a token for its step and source</div>"
    )
    st.markdown(
        f"<div class='dl-strip' data-key='{html.escape(key)}' style='line-height:1.9'>{''.join(spans)}</div>"
        + key_line,
        unsafe_allow_html=True,
    )


def render_notices(events: list) -> None:
    for e in events:
        if isinstance(e, Notice):
            (st.warning if e.level == "warning" else st.info)(e.message)


DECODE_HELP = (
    "Decode clock: the tokens after the first step over the seconds from the first step's end to the last token. "
    "The first step holds the prompt's prefill; the page's own work is on no clock. The bench's decode_tok_s and "
    "decode_speedup_vs_ar are the same figures."
)


def render_metrics(events: list, *, key: str, ar_events: list | None = None) -> None:
    """Decode tokens/s, time to first token, tokens; the decode speedup when an AR trace is given (the bench's
    ``decode_speedup_vs_ar``); the wall-clock figure, prefill included, in a line below."""
    m = summarize(events)
    cols = st.columns(2)
    cols[0].metric("tokens/s", "–" if m.decode_tok_s is None else f"{m.decode_tok_s:.1f}", help=DECODE_HELP)
    cols[1].metric("first token", f"{m.ttft_s * 1000:.0f} ms" if m.ttft_s is not None else "–")
    cols = st.columns(2)
    cols[0].metric("tokens", m.tokens)
    if ar_events:
        cols[1].metric("speedup vs AR", format_speedup(decode_speedup(m, summarize(ar_events))), help=DECODE_HELP)
    st.caption(f"decode clock; wall clock with the prefill: {m.tok_s:.1f} tokens/s over {m.wall_s:.2f} s")


def takeaway(events: list, ar_events: list) -> str:
    """The run in one line beside AR's, from its own figures (the decode clock, as every page figure)."""
    m, ar = summarize(events), summarize(ar_events)
    speed = format_speedup(decode_speedup(m, ar))
    if any(isinstance(e, PipelineTick) for e in events):
        hits = "–" if m.acceptance_rate is None else f"{m.acceptance_rate:.0%}"
        return f"SPEED's early-exit guesses came true {hits} of the time: {speed} AR's speed on this machine."
    if any(isinstance(e, TreeStep) for e in events) and m.mean_accepted is not None:
        return (
            f"{m.method} committed {m.mean_accepted:.2f} tokens per target forward: {speed} AR's speed on this "
            "machine, with the same answer."
        )
    return f"{m.method}: {speed} AR's speed on this machine."


def settings_note(events: list, controls: dict) -> str | None:
    """One sentence when the run shown was made with other settings than the controls now say (a recorded
    example, or controls changed since the run), else None."""
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    if start is None:
        return None
    differ = {k: (start.config[k], v) for k, v in controls.items() if k in start.config and start.config[k] != v}
    if not differ:
        return None
    ran = ", ".join(f"{k.replace('_', ' ')} {was}" for k, (was, _) in differ.items())
    now = ", ".join(f"{now}" for _, (_, now) in differ.items())
    return f"The run shown used {ran}; the controls say {now}: press Run to see those."
