"""Skeleton graph: Skeleton-of-Thought and Skeleton Graph Decoding beside AR, with the DAG drawn live."""

import html

import pandas as pd
import streamlit as st

from components.answer import answer_text, render_notices
from components.live import stream_run
from components.session import cached_model, require_model, sidebar
from components.skeleton import render_dag, render_timeline
from components.traces import download_trace, load_trace_widget, trace_method
from core.methods import RUN_ERRORS, get_method
from core.methods.skeleton import DEFAULT_POOL_LAYER
from core.metrics import summarize
from core.quality import JudgeError, judge_with_endpoint, judge_with_model, proxy_scores
from core.trace import NodeStep, RunStarted, SkeletonReady

RUNS = {"ar": "AR", "sot": "Skeleton-of-Thought", "sgd": "Skeleton graph decoding"}

st.title("Skeleton graph")
st.caption(
    "The model first writes a skeleton of short points (constrained so that it always parses). SoT expands "
    "every point at once in one batch; SGD reads each point's dependencies and difficulty, decodes each wave of "
    "ready points as a batch with their parents' answers in the prompt, and lets difficulty pick the model. "
    "Speed comes from batching: one forward serves every point in the batch."
)
settings = sidebar()
question = st.text_area(
    "Question",
    "What are the main differences between renting and buying a home? Cover cost, flexibility, maintenance "
    "and long-term wealth.",
    key="sg_prompt",
    height=90,
)
c1, c2, c3 = st.columns(3)
point_tokens = c1.number_input("tokens per point (0: max new tokens / points)", 0, 4096, 0, key="sg_point_tokens")
layer = c2.number_input(
    "cheap pool member: first e layers + exit head (0: none)", 0, 64, DEFAULT_POOL_LAYER, key="sg_layer"
)
extra = c3.text_input("or pool models, cheapest first (ids or paths, comma-separated)", key="sg_pool")
with st.expander("Use my own skeleton instead of the model's"):
    own = st.text_area(
        "Skeleton (one point per line: '2. Compare costs | depends on: 1 | difficulty: 3')", key="sg_skeleton"
    )
run = st.button("Run AR, SoT and SGD", type="primary", key="sg_run")
model = require_model(settings)

state = st.session_state.setdefault("sg_results", {})
recorded = load_trace_widget(("sot", "sgd"), key="sg-trace", preselect=not state)
if recorded is not None and not run:
    state.clear()
    state[trace_method(recorded)] = recorded


def options(name: str) -> dict:
    if name == "ar":
        return {}
    opts = {"skeleton": own, "point_tokens": int(point_tokens)}
    if name == "sgd":
        opts["layer"] = int(layer)
        names = [n.strip() for n in extra.split(",") if n.strip()]
        opts["pool_models"] = [cached_model(n, settings.spec.device, settings.spec.dtype) for n in names]
    return opts


if run:
    state.clear()
    st.session_state.pop("sg_judge", None)
    dag_slot = st.empty()
    live_area = st.empty()  # the live columns give way to the results below once every run is done
    cols = dict(zip(RUNS, live_area.container().columns(3), strict=True))
    for name, col in cols.items():
        col.subheader(RUNS[name])
        seen: list = []

        def draw(ev, seen=seen, name=name):
            seen.append(ev)
            if isinstance(ev, SkeletonReady | NodeStep):
                render_dag(seen, key=f"sg-live-{name}-{len(seen)}", container=dag_slot)

        try:
            state[name] = stream_run(
                get_method(name).run(model, question, settings.gen, **options(name)),
                key=f"sg-live-{name}",
                container=col,
                on_event=draw,
            )
        except RUN_ERRORS as exc:
            st.warning(f"{RUNS[name]}: {exc}")
            break
    dag_slot.empty()
    live_area.empty()

if state:
    ar = summarize(state["ar"]) if "ar" in state else None
    rows = []
    cols = st.columns(len(state))
    for col, (name, events) in zip(cols, state.items(), strict=True):
        m = summarize(events)
        with col:
            st.markdown(f"**{RUNS.get(name, name)}**")
            render_notices(events)
            text = html.escape(answer_text(events)).replace("\n", "<br>")
            st.markdown(f"<div class='dl-answer'>{text}</div>", unsafe_allow_html=True)
            st.metric("wall-clock", f"{m.wall_s:.2f} s")
            st.metric("tokens/s", f"{m.tok_s:.1f}")
            if ar and name != "ar":
                st.metric("speedup vs AR (wall-clock)", f"{ar.wall_s / m.wall_s:.2f}x" if m.wall_s else "–")
            download_trace(events, key=f"sg-dl-{name}")
        rows.append(
            {
                "method": name,
                "wall-clock s": m.wall_s,
                "tokens": m.tokens,
                "tokens/s": m.tok_s,
                "speedup vs AR": ar.wall_s / m.wall_s if ar and m.wall_s else None,
                "nodes": m.extras.get("nodes"),
                "waves": m.extras.get("waves"),
                "nodes per wave": m.extras.get("mean_nodes_per_wave"),
                "skeleton s": m.extras.get("skeleton_s"),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="sg-table")
    for name in ("sgd", "sot"):
        if name in state:
            st.subheader(f"{RUNS[name]}: the skeleton DAG")
            render_dag(state[name], key=f"sg-dag-{name}")
            break
    st.subheader("Decoding timeline (one bar per node, coloured by wave)")
    render_timeline({n: e for n, e in state.items() if n != "ar"}, key="sg-timeline")

    st.subheader("Quality")
    answers = {name: summarize(events).text for name, events in state.items()}
    asked = next(e.prompt for e in next(iter(state.values())) if isinstance(e, RunStarted))
    cache_key = (model.key, asked, tuple(sorted(answers.items())))
    if st.session_state.get("sg_proxy", (None,))[0] != cache_key:
        try:
            st.session_state["sg_proxy"] = (cache_key, proxy_scores(model, asked, answers))
        except RUN_ERRORS as exc:
            st.session_state["sg_proxy"] = (cache_key, {})
            st.warning(str(exc))
    proxy = st.session_state["sg_proxy"][1]
    st.caption(
        "Proxy, not a judgement: the full model's mean log-likelihood of each answer given the question "
        "(nats per token, higher = more likely to the model), and unigram overlap (ROUGE-1 F) with the AR answer."
    )
    table = [
        {"method": n, "proxy: log-likelihood": s["loglik"], "proxy: overlap with AR": s["overlap_with_ar"]}
        for n, s in proxy.items()
    ]
    st.dataframe(pd.DataFrame(table), hide_index=True, key="sg-proxy")
    j1, j2 = st.columns([3, 1])
    judge = j1.text_input("Judge: a chat model id or path, or an OpenAI-compatible endpoint URL", key="sg_judge_id")
    judge_model_name = j2.text_input("endpoint model name", key="sg_judge_name")
    if st.button("Judge the answers (1-5)", key="sg_judge_run") and judge.strip():
        scores = {}
        try:
            for name, text in answers.items():
                if judge.strip().startswith(("http://", "https://")):
                    scores[name] = judge_with_endpoint(judge.strip(), asked, text, model=judge_model_name)
                else:
                    judge_model = cached_model(judge.strip(), settings.spec.device, settings.spec.dtype)
                    scores[name] = judge_with_model(judge_model, asked, text)
            st.session_state["sg_judge"] = (judge.strip(), scores)
        except (JudgeError, *RUN_ERRORS) as exc:
            st.warning(str(exc))
    if "sg_judge" in st.session_state:
        who, scores = st.session_state["sg_judge"]
        st.dataframe(
            pd.DataFrame([{"method": n, f"judge score ({who})": s} for n, s in scores.items()]),
            hide_index=True,
            key="sg-judge-table",
        )
