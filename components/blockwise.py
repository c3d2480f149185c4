"""Blockwise Parallel Decoding from trace events: the heads' lattice of a step, block efficiency per
step, and the head analysis recorded with the trained heads."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from components.charts import rate_layout
from core.trace import BlockStep, StepCommitted

PATH_COLOURS = ["#1d4ed8", "#f59e0b", "#9333ea", "#0d9488", "#db2777", "#65a30d"]


def lattice_figure(block: BlockStep) -> go.Figure:
    """Heads (x) by rank in the head's top-k (y), coloured by q_i; every verified draft drawn over it,
    the accepted one thick (its accepted part solid)."""
    m, topk = len(block.lattice_tokens), len(block.lattice_tokens[0])
    heads = [f"head {i}" for i in range(1, m + 1)]
    ranks = [f"#{r + 1}" for r in range(topk)]
    z = [[block.lattice_q[i][r] for i in range(m)] for r in range(topk)]
    text = [[block.lattice_texts[i][r].replace("\n", "↵") or "·" for i in range(m)] for r in range(topk)]
    fig = go.Figure(
        go.Heatmap(
            x=heads,
            y=ranks,
            z=z,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "q_i"},
            hovertemplate="%{x}, rank %{y}: '%{text}' q=%{z:.3f}<extra></extra>",
        )
    )
    for j, path in enumerate(block.paths):
        label = "plain BPD draft (argmax)" if j == 0 else f"rescored draft {j}"
        score = block.scores[j] if j < len(block.scores) else 0.0
        chosen = j == block.accepted_path
        fig.add_trace(
            go.Scatter(
                x=heads,
                y=[ranks[r] for r in path],
                mode="lines+markers",
                name=f"{label}, S={score:.2f}" + (f", {block.accepted} accepted" if chosen else ""),
                line={"color": PATH_COLOURS[j % len(PATH_COLOURS)], "width": 5 if chosen else 2, "dash": "solid"},
                marker={"size": 12 if chosen else 7},
                opacity=1.0 if chosen else 0.7,
            )
        )
    fig.update_layout(
        height=150 + 40 * topk,
        yaxis={"autorange": "reversed", "title": "rank in the head's top-k"},
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def render_lattice(block: BlockStep, *, key: str, container=None) -> None:
    (container or st).plotly_chart(lattice_figure(block), key=key, width="stretch")


def block_efficiency_figure(events: list) -> go.Figure:
    """Tokens committed per target forward at every step (block efficiency), split base / heads."""
    steps = [e for e in events if isinstance(e, StepCommitted)]
    x = [e.step for e in steps]
    heads = [sum(s.startswith("head") for s in e.sources) for e in steps]
    base = [len(e.token_ids) - h for e, h in zip(steps, heads, strict=True)]
    mean = sum(len(e.token_ids) for e in steps) / max(len(steps), 1)
    fig = go.Figure(
        [
            go.Bar(x=x, y=base, name="base token", marker_color="#64748b"),
            go.Bar(x=x, y=heads, name="accepted head tokens", marker_color="#16a34a"),
        ]
    )
    fig.add_hline(y=mean, line_dash="dot", annotation_text=f"block efficiency {mean:.2f}")
    fig.update_layout(
        barmode="stack",
        height=280,
        xaxis_title="step",
        yaxis_title="tokens per forward",
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.15},
    )
    return fig


def render_block_efficiency(events: list, *, key: str) -> None:
    st.plotly_chart(block_efficiency_figure(events), key=key, width="stretch")


def head_analysis_figure(metrics: dict, losses: list[float], steps_per_head: int) -> go.Figure:
    """Kim et al.'s analysis recorded at training: top-1 accuracy and entropy per predictor, repetition of
    neighbouring heads, and the training loss of each head."""
    top1, entropy, rep = metrics["top1_accuracy"], metrics["entropy"], metrics["repetition"]
    names = ["base"] + [f"head {i}" for i in range(1, len(top1))]
    fig = make_subplots(
        rows=1,
        cols=4,
        subplot_titles=["top-1 accuracy", "entropy (nats)", "same argmax as next", "training KL"],
    )
    fig.add_trace(go.Bar(x=names, y=top1, marker_color="#2563eb", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=entropy, marker_color="#f59e0b", showlegend=False), row=1, col=2)
    pairs = [f"{a} / {b}" for a, b in zip(names, names[1:], strict=False)]
    fig.add_trace(go.Bar(x=pairs, y=rep, marker_color="#9333ea", showlegend=False), row=1, col=3)
    for i in range(len(losses) // max(steps_per_head, 1)):
        chunk = losses[i * steps_per_head : (i + 1) * steps_per_head]
        fig.add_trace(go.Scatter(y=chunk, mode="lines", name=f"head {i + 1}"), row=1, col=4)
    rate_layout(fig, "", "", 300)
    fig.update_yaxes(range=None, autorange=True, row=1, col=2)
    fig.update_yaxes(range=None, autorange=True, type="log", row=1, col=4)
    return fig


def render_head_analysis(metrics: dict, losses: list[float], steps_per_head: int, *, key: str) -> None:
    st.plotly_chart(head_analysis_figure(metrics, losses, steps_per_head), key=key, width="stretch")
