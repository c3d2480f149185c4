"""SPEED from PipelineTick events: the timeline (token x stage x time) and hit rates per exit layer."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from components.charts import rate_layout
from core.metrics import summarize
from core.trace import PipelineTick


def timeline_figure(ticks: list[PipelineTick], selected: int | None = None) -> go.Figure:
    """One cell per (tick, stage) with the token in it: green = confirmed, orange = speculative; x is the tick
    (its seconds on hover). A red cross marks a flush (the guess behind the committed token was wrong), a
    green dot a hit (the guess was right and its work was kept); ``selected`` highlights one tick's cells."""
    fig = go.Figure()
    n_stages = len(ticks[0].stage_texts) if ticks else 0
    for speculative, colour, name in ((False, "#16a34a", "confirmed token"), (True, "#f59e0b", "speculative guess")):
        cells = [
            (tk, s)
            for tk in ticks
            for s in range(n_stages)
            if tk.stage_texts[s] and tk.stage_speculative[s] == speculative
        ]
        fig.add_trace(
            go.Bar(
                x=[0.9] * len(cells),
                y=[f"stage {s + 1}" for _, s in cells],
                base=[tk.tick - 0.45 for tk, _ in cells],
                orientation="h",
                name=name,
                marker_color=colour,
                marker_line={
                    "width": [3 if tk.tick == selected else 0 for tk, _ in cells],
                    "color": "#1e3a8a",
                },
                text=[tk.stage_texts[s] for tk, s in cells],
                textposition="inside",
                hovertext=[
                    f"{tk.stage_texts[s]!r}, slot {tk.stage_slots[s]}, tick {tk.tick}: {tk.start:.3f}-{tk.end:.3f} s"
                    for tk, s in cells
                ],
                hoverinfo="text",
            )
        )
    for hit, colour, symbol, name in ((False, "#dc2626", "x", "flush"), (True, "#15803d", "circle", "hit")):
        marks = [tk for tk in ticks if tk.hit is hit]
        fig.add_trace(
            go.Scatter(
                x=[tk.tick + 0.45 for tk in marks],
                y=[f"stage {n_stages}"] * len(marks),
                mode="markers",
                name=name,
                marker={"color": colour, "symbol": symbol, "size": 10},
                hovertext=[
                    f"tick {tk.tick} ({tk.end:.3f} s): flushed {tk.flushed}"
                    if not hit
                    else f"tick {tk.tick} ({tk.end:.3f} s): guess confirmed"
                    for tk in marks
                ],
                hoverinfo="text",
            )
        )
    if selected is not None:
        fig.add_vrect(x0=selected - 0.5, x1=selected + 0.5, fillcolor="#2563eb", opacity=0.12, line_width=0)
    fig.update_layout(
        barmode="overlay",
        height=140 + 60 * n_stages,
        xaxis={"title": "tick (hover a cell for its time in seconds)", "tickformat": "d", "rangemode": "tozero"},
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.25},
        yaxis={"categoryorder": "category descending"},
    )
    return fig


def first_flush(ticks: list[PipelineTick]) -> int:
    """The tick a tick slider opens on: the first flush (where SPEED's speculation shows), else the first hit."""
    for verdict in (False, True):
        found = next((tk.tick for tk in ticks if tk.hit is verdict), None)
        if found is not None:
            return found
    return 1


def render_timeline(ticks: list[PipelineTick], *, key: str, container=None, selected: int | None = None) -> None:
    (container or st).plotly_chart(timeline_figure(ticks, selected), key=key, width="stretch")


def hit_rate_figure(data: dict) -> go.Figure:
    """Hit rate (early prediction == the model's real next token) per exit layer."""
    fig = go.Figure(
        go.Scatter(x=data["layers"], y=data["plain"], mode="lines+markers", name="final norm + LM head at layer e")
    )
    heads = data.get("trained", {})
    if heads:
        fig.add_trace(
            go.Scatter(
                x=[int(k) for k in heads],
                y=list(heads.values()),
                mode="markers",
                marker={"size": 12, "symbol": "star"},
                name="trained exit head",
            )
        )
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="0.5")
    return rate_layout(fig, "exit layer e", "hit rate", 300)


def explain_tick(tick: PipelineTick) -> str:
    busy = [
        f"stage {s + 1}: {t!r}{' (guess)' if spec else ''}"
        for s, (t, spec) in enumerate(zip(tick.stage_texts, tick.stage_speculative, strict=True))
        if t
    ]
    what = "; ".join(busy) or "idle"
    if tick.hit is True:
        end = f"The token {tick.committed_text!r} left the pipe and confirmed the guess behind it: its work is kept."
    elif tick.hit is False:
        end = (
            f"The token {tick.committed_text!r} left the pipe, but the guess behind it was wrong: "
            f"flushed {tick.flushed}."
        )
    elif tick.committed_text:
        end = f"The token {tick.committed_text!r} left the pipe."
    else:
        end = "No token left the pipe in this tick (it was filling after a start or a flush)."
    return f"Tick {tick.tick}: {what}. {end}"


def render_tick_steps(ticks: list[PipelineTick], *, key: str, slider_key: str) -> None:
    """A tick slider (opening on the first flush), the sentence on that tick, and the whole timeline with that
    tick's cells highlighted."""
    pick = st.slider("tick", 1, len(ticks), first_flush(ticks), key=slider_key) if len(ticks) > 1 else 1
    st.write(explain_tick(ticks[pick - 1]))
    render_timeline(ticks, key=key, selected=ticks[pick - 1].tick)


def render_speed_metrics(events: list) -> None:
    """Hit rate, flushes, ticks and the modelled parameter-shared speedup (labelled as a model)."""
    m = summarize(events)
    extras = m.extras
    a, b, c = st.columns(3)
    a.metric("hit rate", f"{m.acceptance_rate:.2f}" if m.acceptance_rate is not None else "–")
    b.metric("flushes", extras.get("flushes", 0))
    c.metric("ticks", extras.get("ticks", 0))
    st.metric(
        "modelled speedup, parameter-shared decoder (a model, not a measurement)",
        f"{extras.get('modelled_parameter_shared_speedup', 0):.2f}x",
    )
    st.caption(
        f"From measured per-layer costs: {extras.get('layer_ms_1_token', 0):.2f} ms for 1 token, "
        f"{extras.get('layer_ms_batched', 0):.2f} ms for {extras.get('stages', 0)} tokens in one call. "
        "On this standard decoder the stages of a tick run one after another, so a tick costs about a "
        "full forward plus the exit head."
    )


def render_hit_rates(data: dict | None, model_name: str, *, key: str) -> None:
    """The recorded hit-rate curve, or how to measure one."""
    if data is None:
        st.info(f"No hit-rate curve for this model yet: run `python -m core.train hit-rates --model {model_name}`.")
        return
    st.plotly_chart(hit_rate_figure(data), key=key, width="stretch")
    st.caption(
        f"Measured on {data['positions']} positions of the model's own continuations of the prompt suite "
        f"(`python -m core.train hit-rates`); trained heads on {data['held_out_positions']} held-out positions."
    )
