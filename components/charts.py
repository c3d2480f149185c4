"""Plotly charts over trace events."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.metrics import summarize


def latency_figure(traces: dict[str, list]) -> go.Figure:
    """Per-token latency (ms) of each named trace, token index on x."""
    fig = go.Figure()
    for name, events in traces.items():
        lat = summarize(events).per_token_latency_s
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(lat) + 1)),
                y=[x * 1000 for x in lat],
                mode="lines+markers",
                name=name,
                marker={"size": 4},
            )
        )
    fig.update_layout(
        xaxis_title="token",
        yaxis_title="latency (ms)",
        height=320,
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12},
    )
    return fig


def render_latency_chart(traces: dict[str, list], *, key: str) -> None:
    st.plotly_chart(latency_figure(traces), key=key, width="stretch")


def rate_layout(fig: go.Figure, x_title: str, y_title: str, height: int, title: str = "") -> go.Figure:
    """Shared layout of the charts of a rate in [0, 1] (acceptance per depth, hit rate per layer); the legend
    sits under the plot so it never overlaps the title."""
    fig.update_layout(
        title={"text": title, "font": {"size": 14}} if title else None,
        height=height,
        xaxis_title=x_title,
        yaxis_title=y_title,
        yaxis_range=[0, 1],
        margin={"t": 40 if title else 30, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
