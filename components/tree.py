"""Draft trees from TreeStep events: the tree of one step, and acceptance per depth."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.charts import rate_layout
from components.live import stream_run, warm_up_all
from components.tables import percent, render_table
from core.config import GenerationConfig
from core.metrics import acceptance_per_depth, decode_speedup, format_speedup, summarize
from core.trace import TreeStep

_ORIGIN = {"resampled": "the residual after a rejection", "bonus": "p at a leaf"}
COLOURS = {
    "root": "#64748b",
    "accepted": "#16a34a",
    "rejected": "#dc2626",
    "unvisited": "#d4d4d8",
    "bonus": "#2563eb",
    "resampled": "#f59e0b",
}


def _short(text: str, width: int = 8) -> str:
    text = repr(text)[1:-1]
    return text if len(text) <= width else text[: width - 1] + "…"


def _layout(step: TreeStep) -> list[tuple[float, float]]:
    """x = depth; y spreads each level's nodes evenly, children under their parent's order (BFS)."""
    by_depth: dict[int, list[int]] = {}
    for n, d in enumerate(step.depths):
        by_depth.setdefault(d, []).append(n)
    pos = [(0.0, 0.0)] * len(step.tokens)
    for d, nodes in by_depth.items():
        for i, n in enumerate(nodes):
            pos[n] = (float(d), (len(nodes) - 1) / 2 - i)
    return pos


def tree_figure(step: TreeStep) -> go.Figure:
    pos = _layout(step)
    last = step.accepted_path[-1]
    # the final token sits one depth past the last accepted node, below the tree so it overlaps no draft node
    final_pos = (pos[last][0] + 1, min(y for _, y in pos) - 1)
    edge_x, edge_y = [], []
    for n, parent in enumerate(step.parents):
        if parent >= 0:
            edge_x += [pos[parent][0], pos[n][0], None]
            edge_y += [pos[parent][1], pos[n][1], None]
    edge_x += [pos[last][0], final_pos[0], None]
    edge_y += [pos[last][1], final_pos[1], None]
    fig = go.Figure(
        go.Scatter(
            x=edge_x, y=edge_y, mode="lines", line={"color": "#a1a1aa", "width": 1}, hoverinfo="skip", showlegend=False
        )
    )
    for status in ("root", "accepted", "rejected", "unvisited"):
        nodes = [n for n, s in enumerate(step.status) if s == status]
        if not nodes:
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes],
                y=[pos[n][1] for n in nodes],
                mode="markers+text",
                name=status,
                text=[_short(step.texts[n]) for n in nodes],  # every node's token, cut; whole on hover
                textfont={"size": 12 if status in ("root", "accepted") else 9},
                hovertext=[repr(step.texts[n])[1:-1] for n in nodes],
                textposition="top center",
                marker={"size": 16, "color": COLOURS[status], "line": {"width": 1, "color": "#18181b"}},
                customdata=[[percent(step.p_token[n]), percent(step.q_token[n]), step.depths[n]] for n in nodes],
                hovertemplate="%{hovertext}<br>depth %{customdata[2]} (depth 1: the first drafted token)<br>"
                "p = %{customdata[0]} (target, under its parent)<br>q = %{customdata[1]} (draft)<extra>"
                + status
                + "</extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[final_pos[0]],
            y=[final_pos[1]],
            mode="markers+text",
            name=step.final_kind,
            text=[repr(step.final_text)[1:-1]],
            textposition="top center",
            marker={"size": 18, "symbol": "star", "color": COLOURS[step.final_kind]},
            hovertemplate=f"%{{text}}<extra>{step.final_kind}: drawn from {_ORIGIN[step.final_kind]}</extra>",
        )
    )
    fig.update_layout(
        height=max(340, 26 * max(step.depths.count(d) for d in set(step.depths))),
        margin={"t": 40, "b": 60, "l": 10, "r": 10},
        title={"text": f"Step {step.step}: the draft tree, coloured by what verification did", "font": {"size": 14}},
        legend={"orientation": "h", "y": -0.12, "title": {"text": "colour key:"}},
        xaxis={"title": "draft depth", "dtick": 1, "zeroline": False},
        yaxis={"visible": False},
        plot_bgcolor="white",
    )
    return fig


def render_tree_step(step: TreeStep, *, key: str, container=None) -> None:
    (container or st).plotly_chart(tree_figure(step), key=key, width="stretch")


def depth_figure(rates: dict[str, list[float]]) -> go.Figure:
    fig = go.Figure()
    for name, values in rates.items():
        fig.add_trace(go.Bar(x=list(range(1, len(values) + 1)), y=values, name=name))
    fig.update_layout(barmode="group", xaxis={"dtick": 1, "tickformat": "d"})
    title = "Acceptance per draft depth: P(depth d accepted | depth d - 1 was)"
    return rate_layout(fig, "draft depth d", "acceptance rate", 300, title)


def render_acceptance_per_depth(rates: dict[str, list[float]], *, key: str) -> None:
    st.plotly_chart(depth_figure(rates), key=key, width="stretch")


def rule_in_force(rule: str, greedy: bool) -> str:
    """The verification rule as it acts: at temperature 0 every rule accepts the child equal to argmax p."""
    name = RULES.get(rule, rule.upper() if rule != "match" else "match (draw from p, keep the child that matches)")
    if rule == "greedy":
        return "greedy rule (accept the draft token equal to the target's argmax)"
    return f"{name} rule" + (
        ", which at temperature 0 accepts the draft token equal to the target's argmax" if greedy else ""
    )


def explain_step(step: TreeStep, greedy: bool) -> str:
    """One sentence on what the step did, naming the rule in force, for step-through teaching."""
    accepted = len(step.accepted_path) - 1
    tail = (
        "then drew a bonus token from p at the leaf"
        if step.final_kind == "bonus"
        else "then rejected the next depth and drew a token from the residual"
        if not greedy
        else "then took the target's own next token where the draft was wrong"
    )
    return (
        f"Step {step.step}, verified by the {rule_in_force(step.rule, greedy)}: {accepted} of {max(step.depths)} "
        f"draft depths accepted ({len(step.tokens) - 1} drafted tokens in the tree), {tail}: "
        f"{accepted + 1} token{'s' if accepted else ''} for one target forward."
    )


def most_informative(trees: list[TreeStep]) -> int:
    """The 1-based step a step slider opens on: the one that accepted the most (the first such); when none
    accepted anything, the first step."""
    best = max(range(len(trees)), key=lambda i: (len(trees[i].accepted_path), -i))
    return best + 1


RULES = {"rrs": "RRS (with replacement)", "rrsw": "RRS without replacement", "spechub": "SpecHub (k = 2)"}


def compare_rules(start: Callable[[str, GenerationConfig], Iterator], gen: GenerationConfig) -> dict[str, list]:
    """AR and every rule on the same prompt (``start(name, gen)`` makes a run's generator): each warmed up, then
    timed with the page quiet (``components.live``), under a progress bar."""
    names = ["ar", *RULES]
    warm_up_all({RULES.get(n, "AR"): (lambda g, n=n: start(n, g)) for n in names}, gen)
    progress = st.progress(0.0, "comparing rules")
    area = st.empty()
    runs = {}
    for i, name in enumerate(names):
        progress.progress(i / len(names), f"timing {name}")
        with area.container():
            st.markdown(f"**{RULES.get(name, 'AR')}**")
            runs[name] = stream_run(start(name, gen), key=f"rules-live-{name}")
    area.empty()
    progress.progress(1.0, "done")
    return runs


def rule_table(runs: dict[str, list]) -> pd.DataFrame:
    """Per rule: tokens per target forward, the acceptance at each draft depth exactly as the chart below draws
    it (P(depth d accepted | depth d - 1 reached), ``acceptance_per_depth``), speed on the decode clock."""
    ar = summarize(runs["ar"])
    rows = []
    for name in RULES:
        m = summarize(runs[name])
        row = {"rule": RULES[name], "mean accepted length": m.mean_accepted}
        row.update({f"accepted at depth {d}": x for d, x in enumerate(acceptance_per_depth(runs[name]), start=1)})
        row.update(
            {
                "tokens/s": m.decode_tok_s,
                "speedup vs AR": decode_speedup(m, ar),
                "identical to AR": m.output_ids == ar.output_ids,
            }
        )
        rows.append(row)
    rows.append({"rule": "AR", "tokens/s": ar.decode_tok_s, "speedup vs AR": 1.0, "identical to AR": True})
    return pd.DataFrame(rows, dtype=object)


def same_drafts_table(events: list) -> pd.DataFrame | None:
    """Every rule's exact acceptance on one run's nodes (same p and q), per depth; None at T = 0."""
    exact = summarize(events).extras.get("expected_acceptance")
    if not exact:
        return None
    rows = []
    for rule, fig in exact.items():
        row = {"rule": RULES.get(rule, rule), "mean": fig["mean"]}
        row.update({f"depth {d}": x for d, x in enumerate(fig["by_depth"], start=1) if x is not None})
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


SHORT = {"rrs": "RRS", "rrsw": "RRSw", "spechub": "SpecHub"}


def render_rule_comparison(runs: dict[str, list], *, key: str) -> None:
    ar = summarize(runs["ar"])
    speeds = ", ".join(f"{SHORT[n]} {format_speedup(decode_speedup(summarize(runs[n]), ar))}" for n in RULES)
    st.markdown(f"On the decode clock: {speeds} AR's speed on this machine, same prompt and settings.")
    render_table(rule_table(runs), key=f"{key}-table")
    same = same_drafts_table(runs["rrs"])
    if same is None:
        st.info(
            "At temperature 0 every rule is the greedy rule (accept the child equal to argmax p), so the rules "
            'accept the same tokens; their speeds differ only by how the tree was drawn. Press "Compare rules at '
            'temperature 1" (or set a temperature above 0 in the sidebar) to compare the rules themselves.'
        )
    else:
        st.caption(
            "Exact probability that each rule accepts a child, computed from the same p and q at every node the "
            "RRS run verified (no sampling noise), by the depth of the child (depth 1 = the first drafted token). "
            "The table above and the chart below count what each rule's own run accepted, with sampling noise:"
        )
        render_table(same, key=f"{key}-exact", digits=3)
    render_acceptance_per_depth({name: acceptance_per_depth(runs[name]) for name in RULES}, key=f"{key}-depth")
