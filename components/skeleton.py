"""SoT / SGD from trace events: the skeleton DAG with each node's state, and the decoding timeline."""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.answer import answer_text, render_notices
from components.explorer import dag_html, render_explorer
from components.race import render_race
from components.tables import render_table
from components.traces import download_trace
from core.metrics import equal_length_speedup, format_speedup, summarize
from core.registry import RUN_ERRORS
from core.runner import on_decoder
from core.quality import JudgeError, judge_answers, proxy_scores
from core.trace import Forwarded, NodeStep, RunStarted, SkeletonReady

RUNS = {"ar": "AR", "sot": "Skeleton-of-Thought", "sgd": "Skeleton graph decoding"}

STATE_COLOURS = {"waiting": "#d4d4d8", "decoding": "#f59e0b", "done": "#16a34a"}
MODEL_SYMBOLS = ["circle", "diamond", "square", "triangle-up", "star"]


def skeleton_of(events: list) -> SkeletonReady | None:
    return next((e for e in events if isinstance(e, SkeletonReady)), None)


def node_states(events: list) -> list[str]:
    """waiting / decoding / done per node, from the NodeStep events seen so far."""
    ready = skeleton_of(events)
    states = ["waiting"] * (len(ready.titles) if ready else 0)
    for e in events:
        if isinstance(e, NodeStep):
            for node, done in zip(e.nodes, e.done, strict=True):
                states[node] = "done" if done else "decoding"
    return states


def _positions(ready: SkeletonReady) -> dict[int, tuple[float, float]]:
    pos = {}
    for w, nodes in enumerate(ready.waves):
        for i, n in enumerate(nodes):
            pos[n] = (float(w), (len(nodes) - 1) / 2 - i)
    return pos


def forwarded_of(events: list) -> dict[int, Forwarded]:
    """Per dependent node, what its parents forwarded to it so far (SGD's Forwarded events)."""
    return {e.node: e for e in events if isinstance(e, Forwarded)}


def _edge_labels(ready: SkeletonReady, pos: dict, forwarded: dict[int, Forwarded]) -> go.Scatter:
    """A marker at the middle of each edge whose text has been forwarded; hover: the text it carries."""
    xs, ys, hover = [], [], []
    for child, sent in forwarded.items():
        for parent, text in zip(sent.parents, sent.texts, strict=True):
            xs.append((pos[parent][0] + pos[child][0]) / 2)
            ys.append((pos[parent][1] + pos[child][1]) / 2)
            short = html.escape(text if len(text) <= 160 else text[:157] + "…")
            hover.append(f"point {parent + 1} -> point {child + 1} forwards:<br>{short}")
    return go.Scatter(
        x=xs,
        y=ys,
        mode="markers",
        name="forwarded text (hover)",
        marker={"size": 11, "symbol": "square", "color": "#2563eb"},
        hovertext=hover,
        hoverinfo="text",
    )


def dag_figure(ready: SkeletonReady, states: list[str], forwarded: dict[int, Forwarded] | None = None) -> go.Figure:
    """Nodes by wave (x) with edges parent -> child; colour = state, marker = pool member; an edge turns blue,
    with a square at its middle showing the text, once its parent's answer has been forwarded to the child."""
    pos = _positions(ready)
    forwarded = forwarded or {}
    members = sorted(set(ready.models), key=ready.models.index)
    fig = go.Figure()
    for child, parents in enumerate(ready.depends):
        for parent in parents:
            fig.add_annotation(
                x=pos[child][0],
                y=pos[child][1],
                ax=pos[parent][0],
                ay=pos[parent][1],
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                showarrow=True,
                arrowhead=3,
                arrowsize=1.2,
                arrowcolor="#2563eb" if child in forwarded else "#94a3b8",
                standoff=14,
                startstandoff=14,
            )
    for m, member in enumerate(members):
        nodes = [n for n in range(len(ready.titles)) if ready.models[n] == member]
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes],
                y=[pos[n][1] for n in nodes],
                mode="markers+text",
                name=member,
                text=[f"{n + 1}. {ready.titles[n][:28]}" for n in nodes],
                textposition="bottom center",
                marker={
                    "size": 26,
                    "color": [STATE_COLOURS[states[n]] for n in nodes],
                    "symbol": MODEL_SYMBOLS[m % len(MODEL_SYMBOLS)],
                    "line": {"width": 2, "color": "#334155"},
                },
                customdata=[
                    [states[n], ready.difficulty[n], ", ".join(str(p + 1) for p in ready.depends[n]) or "none"]
                    for n in nodes
                ],
                hovertemplate="%{text}<br>state %{customdata[0]}<br>difficulty %{customdata[1]}"
                "<br>depends on %{customdata[2]}<br>" + member + "<extra></extra>",
            )
        )
    if forwarded:
        fig.add_trace(_edge_labels(ready, pos, forwarded))
    fig.update_layout(
        height=220 + 60 * max(len(w) for w in ready.waves),
        xaxis={"title": "wave", "tickvals": list(range(len(ready.waves))), "zeroline": False},
        yaxis={"visible": False},
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.12, "title": "marker = model"},
    )
    return fig


def render_dag(events: list, *, key: str, container=None) -> None:
    ready = skeleton_of(events)
    if ready is not None:
        figure = dag_figure(ready, node_states(events), forwarded_of(events))
        (container or st).plotly_chart(figure, key=key, width="stretch")


def timeline_figure(traces: dict[str, list]) -> go.Figure:
    """Per run and node: a bar from the node's first decoded token to its last, coloured by wave."""
    fig = go.Figure()
    palette = ["#2563eb", "#f59e0b", "#16a34a", "#9333ea", "#db2777", "#0d9488"]
    for name, events in traces.items():
        ready = skeleton_of(events)
        if ready is None:
            continue
        start: dict[int, float] = {}
        end: dict[int, float] = {}
        for e in events:
            if isinstance(e, NodeStep):
                for node in e.nodes:
                    start.setdefault(node, e.t)
                    end[node] = e.t
        for n in sorted(start):
            wave = next(w for w, nodes in enumerate(ready.waves) if n in nodes)
            fig.add_trace(
                go.Bar(
                    y=[f"{name} {n + 1}. {ready.titles[n][:20]}"],
                    x=[end[n] - start[n]],
                    base=[start[n]],
                    orientation="h",
                    marker_color=palette[wave % len(palette)],
                    name=f"wave {wave + 1}",
                    legendgroup=f"wave {wave + 1}",
                    showlegend=False,
                    hovertemplate=f"{name}, node {n + 1}, wave {wave + 1}, {ready.models[n]}<br>"
                    "%{base:.2f} s to %{x:.2f} s later<extra></extra>",
                )
            )
        fig.add_vline(x=ready.t, line_dash="dot", annotation_text=f"{name} skeleton ready")
    fig.update_layout(
        height=160 + 24 * sum(len(e) for e in [skeleton_of(v).titles for v in traces.values() if skeleton_of(v)]),
        xaxis_title="seconds since the run started",
        yaxis={"autorange": "reversed"},
        margin={"t": 30, "b": 40},
        barmode="overlay",
    )
    return fig


def render_timeline(traces: dict[str, list], *, key: str) -> None:
    st.plotly_chart(timeline_figure(traces), key=key, width="stretch")


EQUAL_LENGTH = "speedup vs AR (wall-clock, equal length)"


def render_skeleton_results(state: dict[str, list]) -> None:
    """The takeaway line, each run's answer and figures side by side, a summary table, the DAG and the decoding
    timeline."""
    ar = summarize(state["ar"]) if "ar" in state else None
    if ar and "sgd" in state:
        m = summarize(state["sgd"])
        waves = m.extras.get("waves")
        faster, _ = equal_length_speedup(m, ar)
        st.markdown(
            f"**SGD decoded its {m.extras.get('nodes', '?')} points in {waves} wave{'s' if waves != 1 else ''}: "
            f"{format_speedup(faster)} AR's speed on this machine for an answer of equal length.**"
        )
    rows = []
    for col, (name, events) in zip(st.columns(len(state)), state.items(), strict=True):
        m = summarize(events)
        faster, extrapolated = equal_length_speedup(m, ar) if ar else (None, False)
        with col:
            st.markdown(f"**{RUNS.get(name, name)}**")
            render_notices(events)
            text = html.escape(answer_text(events)).replace("\n", "<br>")
            st.markdown(f"<div class='dl-answer'>{text}</div>", unsafe_allow_html=True)
            st.metric("wall-clock", f"{m.wall_s:.2f} s")
            st.metric("tokens/s", f"{m.tok_s:.1f}")
            if ar and name != "ar":
                st.metric(
                    EQUAL_LENGTH,
                    format_speedup(faster),
                    help=f"AR's time to an answer of {len(m.output_ids)} tokens (this answer's length"
                    + (", extrapolated at AR's speed: AR's own answer is shorter" if extrapolated else "")
                    + ") over this run's wall-clock time.",
                )
            download_trace(events, key=f"sg-dl-{name}")
        rows.append(
            {
                "method": name,
                "wall-clock s": m.wall_s,
                "tokens generated": m.tokens,
                "answer tokens": len(m.output_ids),
                "tokens/s": m.tok_s,
                "speedup vs AR (equal length)": faster,
                "nodes": m.extras.get("nodes"),
                "waves": m.extras.get("waves"),
                "nodes per wave": m.extras.get("mean_nodes_per_wave"),
                "skeleton s": m.extras.get("skeleton_s"),
            }
        )
    render_table(rows, key="sg-table")
    if len(state) > 1:
        render_race({RUNS.get(name, name): events for name, events in state.items()}, key="sg-race")
    for name in ("sgd", "sot"):
        if name in state:
            st.subheader(f"{RUNS[name]}: the skeleton DAG")
            chart, explore = st.tabs(["DAG", "Explore it (drag, zoom, click a point)"])
            with chart:
                render_dag(state[name], key=f"sg-dag-{name}")
            with explore:
                render_explorer(dag_html(state[name]))
            break
    st.subheader("Decoding timeline (one bar per node, coloured by wave)")
    render_timeline({n: e for n, e in state.items() if n != "ar"}, key="sg-timeline")


def render_quality(model, state: dict[str, list], *, load: Callable[[str], object]) -> None:
    """The offline proxies of every answer (cached per answers), and an optional judge's scores."""
    st.subheader("Quality")
    answers = {name: summarize(events).text for name, events in state.items()}
    asked = next(e.prompt for e in next(iter(state.values())) if isinstance(e, RunStarted))
    cache_key = (model.key, asked, tuple(sorted(answers.items())))
    if st.session_state.get("sg_proxy", (None,))[0] != cache_key:
        try:
            st.session_state["sg_proxy"] = (cache_key, on_decoder(proxy_scores, model, asked, answers))
        except RUN_ERRORS as exc:
            st.session_state["sg_proxy"] = (cache_key, {})
            st.warning(str(exc))
    st.caption(
        "Proxy, not a judgement: the full model's mean log-likelihood of each answer given the question "
        "(nats per token, higher = more likely to the model), unigram overlap (ROUGE-1 F) with the AR answer, and "
        "the share of the answer's token 4-grams it already wrote. Read the first beside the last: a greedy loop "
        "is very likely to the model, so a looping answer gets a high log-likelihood."
    )
    table = [
        {
            "method": n,
            "proxy: log-likelihood": s["loglik"],
            "proxy: overlap with AR": s["overlap_with_ar"],
            "proxy: repeated 4-grams": s["repetition"],
        }
        for n, s in st.session_state["sg_proxy"][1].items()
    ]
    render_table(table, key="sg-proxy")
    j1, j2 = st.columns([3, 1])
    judge = j1.text_input("Judge: a chat model id or path, or an OpenAI-compatible endpoint URL", key="sg_judge_id")
    endpoint_model = j2.text_input("endpoint model name", key="sg_judge_name")
    if st.button("Judge the answers (1-5)", key="sg_judge_run") and judge.strip():
        try:
            scores = on_decoder(judge_answers, judge, asked, answers, endpoint_model=endpoint_model, load=load)
            st.session_state["sg_judge"] = (judge.strip(), scores)
        except (JudgeError, *RUN_ERRORS) as exc:
            st.warning(str(exc))
    if "sg_judge" in st.session_state:
        who, scores = st.session_state["sg_judge"]
        frame = pd.DataFrame([{"method": n, f"judge score ({who})": s} for n, s in scores.items()])
        render_table(frame, key="sg-judge-table")
