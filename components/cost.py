"""The verify-cost curve v(n) of the loaded model on this device, for the pages that size trees."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.engine.cost import device_curve, known_curve
from core.models import LoadedModel
from core.runner import on_decoder


def curve_figure(curve: dict) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=curve["n"],
            y=curve["relative"],
            mode="lines+markers",
            name="v(n)",
            hovertemplate="n = %{x} new tokens: %{y:.2f}x one token<extra></extra>",
        )
    )
    fig.update_layout(
        height=260,
        margin={"t": 30, "b": 40},
        xaxis_title="tokens verified in one forward (n)",
        yaxis_title="cost relative to one token",
        showlegend=False,
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
        shown = ", ".join(f"v({n}) = {rel[n]:.2f}" for n in (4, 8, 16, 32, 64) if n in rel)
        st.caption(
            f"One forward of n new tokens costs v(n) times a forward of one ({curve['seconds'][0] * 1000:.0f} ms here, "
            f"{curve['device']}, {curve['dtype']}): {shown}. A tree of n nodes pays off when its expected accepted "
            "tokens beat v(n) plus the draft's cost; the dynamic tree keeps as many nodes as that pays for."
        )
        st.plotly_chart(curve_figure(curve), key=f"{key}-curve", width="stretch")
