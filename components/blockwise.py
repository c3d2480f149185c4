"""Blockwise Parallel Decoding from trace events: the heads' lattice of a step, block efficiency per
step, and the head analysis recorded with the trained heads."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from components.charts import rate_layout
from core.metrics import summarize
from core.trace import BlockStep, StepCommitted

PATH_COLOURS = ["#1d4ed8", "#f59e0b", "#9333ea", "#0d9488", "#db2777", "#65a30d"]


def lattice_figure(block: BlockStep) -> go.Figure:
    """Heads (x) by rank in the head's top-k (y), coloured by q_i, each cell labelled with its token; every
    verified draft is drawn along the top edge of its cells (so the tokens stay readable), the accepted one
    thick, and the accepted draft's cells are outlined."""
    m, topk = len(block.lattice_tokens), len(block.lattice_tokens[0])
    heads = [f"head {i}" for i in range(1, m + 1)]
    z = [[block.lattice_q[i][r] for i in range(m)] for r in range(topk)]
    text = [[block.lattice_texts[i][r].replace("\n", "↵") or "·" for i in range(m)] for r in range(topk)]
    fig = go.Figure(
        go.Heatmap(
            x=heads,
            y=list(range(topk)),
            z=z,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 14},
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "q_i", "len": 0.8},
            hovertemplate="%{x}, rank %{y}: '%{text}' q=%{z:.3f}<extra></extra>",
        )
    )
    for j, path in enumerate(block.paths):
        label = "plain BPD draft (argmax)" if j == 0 else f"rescored draft {j}"
        score = block.scores[j] if j < len(block.scores) else 0.0
        chosen = j == block.accepted_path
        offset = -0.42 + 0.1 * (j % 4)  # along the top edge of the cells, one lane per draft
        fig.add_trace(
            go.Scatter(
                x=heads,
                y=[r + offset for r in path],
                mode="lines+markers",
                name=f"{label}, S={score:.2f}" + (f", {block.accepted} accepted" if chosen else ""),
                line={"color": PATH_COLOURS[j % len(PATH_COLOURS)], "width": 4 if chosen else 2},
                marker={"size": 8 if chosen else 5},
                text=[text[r][i] for i, r in enumerate(path)],
                hovertemplate="%{x}: '%{text}'<extra>" + label + "</extra>",
            )
        )
        if chosen:
            fig.add_trace(
                go.Scatter(
                    x=heads,
                    y=path,
                    mode="markers",
                    marker={"symbol": "square-open", "size": 40, "color": PATH_COLOURS[j % len(PATH_COLOURS)]},
                    hoverinfo="skip",
                    name="cells of the accepted draft",
                )
            )
    fig.update_layout(
        height=170 + 44 * topk,
        title={
            "text": f"Step {block.step}: the heads' top-{topk} tokens and the drafts verified",
            "font": {"size": 14},
        },
        yaxis={
            "autorange": "reversed",
            "title": "rank in the head's top-k",
            "tickvals": list(range(topk)),
            "ticktext": [f"#{r + 1}" for r in range(topk)],
        },
        xaxis={"title": "head (head i drafts the token i places ahead)"},
        margin={"t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def most_accepted(blocks: list[BlockStep]) -> int:
    """The 1-based step a step slider opens on: the one that accepted the most head tokens (the first such)."""
    best = max(range(len(blocks)), key=lambda i: (blocks[i].accepted, -i))
    return best + 1


def render_lattice_steps(blocks: list[BlockStep], *, key: str, slider_key: str = "", container=None) -> None:
    """One step's lattice, with a sentence on it; a step slider (``slider_key``) when there are several."""
    target = container or st
    opening = most_accepted(blocks)
    pick = target.slider("step", 1, len(blocks), opening, key=slider_key) if slider_key and len(blocks) > 1 else 1
    b = blocks[pick - 1]
    target.caption(
        f"Step {b.step}: {len(b.paths)} draft(s) verified; {b.accepted} head token(s) accepted along "
        f"draft {b.accepted_path} ({'plain BPD' if b.accepted_path == 0 else 'a rescored one'}), then the "
        f"base's own token '{b.final_text}'. Cells: each head's top tokens, coloured by the head's q_i."
    )
    target.plotly_chart(lattice_figure(b), key=key, width="stretch")


def render_block_metrics(events: list) -> None:
    """Block efficiency, oracle block efficiency and acceptance rate of a BPD run."""
    m = summarize(events)
    cols = st.columns(3)
    cols[0].metric("block efficiency", f"{m.mean_accepted or 0:.2f}", help="tokens committed per target forward")
    cols[1].metric(
        "oracle block efficiency",
        f"{m.extras.get('oracle_block_efficiency', 0):.2f}",
        help="had the best path through each step's top-k lattice been drafted",
    )
    cols[2].metric("acceptance rate", f"{m.acceptance_rate or 0:.2f}", help="accepted head tokens / drafted")


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


def render_head_file(info, model_key: str, k: int, *, key: str) -> None:
    """The analysis recorded in the shipped heads file (a ``HeadInfo``), or how to train heads when none."""
    if info is None:
        st.info(f"No trained heads for {model_key} with k = {k}; train them with `python -m core.train heads --k {k}`.")
        return
    st.plotly_chart(head_analysis_figure(info.metrics, info.losses, info.steps), key=key, width="stretch")
    oracle = next((v for name, v in info.metrics.items() if name.startswith("oracle_block_efficiency")), None)
    st.caption(
        f"Measured on {info.metrics.get('analysis_positions', 0)} held-out positions when the heads were trained "
        f"(`{info.command}`, seed {info.seed}): greedy block efficiency "
        f"{info.metrics.get('greedy_block_efficiency', 0):.2f}, oracle over the top-4 lattice {oracle or 0:.2f}."
    )
