"""The verify-cost curve v(n) of the loaded model on this device, and the cost-model panel that explains a
lossless method's speedup from its run (core.cost_model)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.tables import render_table
from core.cost_model import (
    break_even_acceptance,
    break_even_cost,
    equivalent_uniform,
    explain,
    predicted_speedup,
    uniform,
    with_figures,
)
from core.engine.cost import device_curve, known_curve
from core.metrics import format_speedup
from core.models import LoadedModel
from core.runner import on_decoder


def curve_figure(curve: dict) -> go.Figure:
    """v(n) as the cost model uses it (never below 1: ``relative_cost``); a measured point below 1 (n tokens
    timed cheaper than one) is drawn apart, marked as timing noise."""
    used = [max(v, 1.0) for v in curve["relative"]]
    fig = go.Figure(
        go.Scatter(
            x=curve["n"],
            y=used,
            mode="lines+markers",
            name="v(n), as used",
            hovertemplate="n = %{x} new tokens: %{y:.2f}x one token<extra></extra>",
        )
    )
    noise = [(n, v) for n, v in zip(curve["n"], curve["relative"], strict=True) if v < 1.0]
    if noise:
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in noise],
                y=[v for _, v in noise],
                mode="markers",
                marker={"symbol": "x", "color": "#a1a1aa", "size": 9},
                name="measured below 1: timing noise, read as 1",
                hovertemplate="n = %{x}: measured %{y:.2f}x one token, below 1: timing noise<extra></extra>",
            )
        )
    fig.update_layout(
        height=260,
        margin={"t": 30, "b": 40},
        xaxis_title="tokens verified in one forward (n)",
        yaxis_title="cost relative to one token",
        showlegend=bool(noise),
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def render_verify_curve(model: LoadedModel, *, key: str) -> None:
    """v(n) in an expander: drawn when measured, else a button that measures it (a few seconds)."""
    with st.expander("Verify cost v(n) on this device: what a bigger tree costs", expanded=False):
        curve = known_curve(model)
        if curve is None and st.button("Measure v(n) now (a few seconds)", key=f"{key}-measure"):
            curve = on_decoder(device_curve, model)
        if curve is None:
            st.caption("Not measured yet on this device; an EAGLE run measures it on its first step.")
            return
        rel = dict(zip(curve["n"], curve["relative"], strict=True))
        shown = ", ".join(f"v({n}) = {max(rel[n], 1.0):.2f}" for n in (4, 8, 16, 32, 64) if n in rel)
        st.caption(
            f"One forward of n new tokens costs v(n) times a forward of one ({curve['seconds'][0] * 1000:.0f} ms here, "
            f"{curve['device']}, {curve['dtype']}): {shown}. A tree of n nodes pays off when its expected accepted "
            "tokens beat v(n) plus the draft's cost; the dynamic tree keeps as many nodes as that pays for."
        )
        st.plotly_chart(curve_figure(curve), key=f"{key}-curve", width="stretch")


def cost_table(runs: dict[str, list], model: LoadedModel | None) -> list[dict]:
    """One row per drafting run of ``runs`` (name -> events, AR among them): the cost model's predicted and
    measured figures and its break-even points."""
    curve, rows = known_curve(model) if model is not None else None, []
    for name, events in runs.items():
        explained = explain(events, curve, runs.get("ar"))
        if explained is None or name == "ar":
            continue
        cm = explained.model
        rows.append(
            {
                "method": name,
                "tokens per step, predicted": cm.tokens_per_step(cm.acceptance),
                "tokens per step, measured": explained.measured_tokens_per_step,
                "speedup, predicted": explained.predicted,
                "speedup, measured": explained.measured_speedup,
                "break-even acceptance": break_even_acceptance(cm),
                "break-even cost": break_even_cost(cm),
                "cost knob": cm.cost_label,
            }
        )
    return rows


def render_cost_comparison(runs: dict[str, list], model: LoadedModel | None, *, key: str) -> None:
    """Compare's cost model: the table over every drafting method, and one method's whole panel."""
    rows = cost_table(runs, model)
    if not rows:
        return
    st.subheader("Cost model: why each method is as fast as it is")
    render_table(rows, key=f"{key}-table")
    pick = st.selectbox("Open the cost model of", [r["method"] for r in rows], key=f"{key}-pick")
    render_cost_panel(runs[pick], runs.get("ar"), model, key=f"{key}-{pick}")


def render_cost_panel(events: list, ar: list | None, model: LoadedModel | None, *, key: str) -> None:
    """Why this run is or is not faster than AR: the cost model's inputs measured on this run, its predicted
    speedup beside the measured one, and sliders asking what acceptance or cost would break even."""
    explained = explain(events, known_curve(model) if model is not None else None, ar)
    if explained is None:
        return
    cm = explained.model
    with st.expander("Cost model: why this speedup", expanded=True):
        st.markdown(cm.formula)
        cols = st.columns(4)
        cols[0].metric(f"tokens per {cm.step_label}, predicted", f"{cm.tokens_per_step(cm.acceptance):.2f}")
        cols[1].metric(f"tokens per {cm.step_label}, measured", f"{explained.measured_tokens_per_step:.2f}")
        cols[2].metric("speedup, predicted", format_speedup(explained.predicted))
        cols[3].metric("speedup, measured", format_speedup(explained.measured_speedup))
        render_table(_inputs(cm), key=f"{key}-inputs")
        for note in explained.notes:
            st.caption(note)
        s1, s2 = st.columns(2)
        a = s1.slider(
            "acceptance at every depth" if len(cm.acceptance) > 1 else "acceptance (hit rate)",
            0.0,
            1.0,
            round(equivalent_uniform(cm), 2),
            0.01,
            key=f"{key}-a",
        )
        top = max(2.0, round(cm.cost * 3, 1))
        c = s2.slider(cm.cost_label, 0.0, top, min(round(cm.cost, 2), top), 0.01, key=f"{key}-c")
        what_if = with_figures(cm, a, c)
        st.markdown(_what_if(what_if))
        st.plotly_chart(_speedup_curve(cm, a, c), key=f"{key}-curve", width="stretch")


def _inputs(cm) -> pd.DataFrame:
    rows = [{"figure": f"acceptance at depth {d}", "value": f"{a:.2f}"} for d, a in enumerate(cm.acceptance, 1)]
    labels = {
        "nodes": "n, tokens verified per step",
        "verify_cost": "v(n), verify cost (AR steps)",
        "draft_forwards": "m, draft forwards per step",
        "stages": "S, pipeline stages",
    }
    rows += [{"figure": labels[k], "value": f"{v:.2f}"} for k, v in cm.figures().items()]
    rows.append({"figure": cm.cost_label, "value": f"{cm.cost:.3f}"})
    return pd.DataFrame(rows)


def _what_if(cm) -> str:
    speed = predicted_speedup(cm)
    a_star, c_star = break_even_acceptance(cm), break_even_cost(cm)
    a_text = f"{a_star:.2f}" if a_star is not None else "none (even acceptance 1 loses to AR at this cost)"
    c_text = f"{c_star:.3f}" if c_star is not None else "none (even a free draft loses to AR at this acceptance)"
    return (
        f"At these settings the model predicts **{format_speedup(speed)}**. Break-even acceptance at this cost: "
        f"**{a_text}**; break-even {cm.cost_label} at this acceptance: **{c_text}**."
    )


def _speedup_curve(cm, a: float, c: float) -> go.Figure:
    grid = [i / 50 for i in range(51)]
    fig = go.Figure(
        go.Scatter(
            x=grid,
            y=[predicted_speedup(cm, uniform(cm, x), c) for x in grid],
            mode="lines",
            name=f"predicted, {cm.cost_label} = {c:.2f}",
            hovertemplate="acceptance %{x:.2f}: %{y:.2f}x<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[a],
            y=[predicted_speedup(cm, uniform(cm, a), c)],
            mode="markers",
            marker={"size": 12},
            name="the sliders",
        )
    )
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="as fast as AR", annotation_position="bottom right")
    fig.update_layout(
        height=280,
        margin={"t": 40, "b": 40},
        title={"text": "Predicted speedup against acceptance", "font": {"size": 14}},
        xaxis={"title": "acceptance at every depth", "range": [0, 1]},
        yaxis={"title": "speedup vs AR", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
