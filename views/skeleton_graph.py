"""Skeleton graph: Skeleton-of-Thought and Skeleton Graph Decoding beside AR, with the DAG drawn live."""

import streamlit as st

from components.live import replay, stream_run, warm_up_all
from components.session import bounded_number, cached_model, prefill_warning, require_model, sidebar
from components.skeleton import RUNS, render_dag, render_quality, render_skeleton_results
from components.traces import load_trace_widget, trace_method
from core.heads import fitted_exit_layer
from core.registry import RUN_ERRORS, get_method
from core.served import SERVED_METHODS, api_base
from core.skeleton import CHEAP_LAYER, DEFAULT_POOL_LAYER

st.title("Skeleton graph")
st.caption(
    "The model first writes a skeleton of short points (constrained so that it always parses). SoT expands "
    "every point at once in one batch; SGD's skeleton also says what each point depends on (decided from the "
    "model's log-probabilities with a threshold calibrated on labelled prompts) and how hard it is; SGD decodes "
    "each wave of ready points as a batch with their parents' answers forwarded into the prompt (the blue edges "
    "of the graph: hover them for the text), and lets difficulty pick the model: a "
    "wave runs on the strongest model any of its points needs, so the cheap one decodes only a wave of easy "
    "points. Speed comes from batching: one forward serves every point in the batch."
)
settings = sidebar()
model = require_model(settings)
layers = model.config.num_hidden_layers
question = st.text_area(
    "Question",
    "Help me start a book club: choose the first book, then set a reading schedule for that book, then write "
    "discussion questions for each part of that schedule.",
    key="sg_prompt",
    height=90,
)
prefill_warning(model, question, "sg_prompt")
c1, c2, c3 = st.columns(3)
point_tokens = c1.number_input("tokens per point (0: max new tokens / points)", 0, 4096, 0, key="sg_point_tokens")
layer = bounded_number(
    c2,
    f"cheap pool member: first e layers + exit head (0: none; e = {CHEAP_LAYER}: the shipped head)",
    0,
    layers - 1,
    fitted_exit_layer(layers, None, DEFAULT_POOL_LAYER),
    "sg_layer",
)
extra = c3.text_input("or pool models, cheapest first (ids or paths, comma-separated)", key="sg_pool")
with st.expander("Use my own skeleton instead of the model's"):
    own = st.text_area(
        "Skeleton (one point per line: '2. Compare costs | depends on: 1 | difficulty: 3')", key="sg_skeleton"
    )
run = st.button("Run AR, SoT and SGD", type="primary", key="sg_run")

state = st.session_state.setdefault("sg_results", {})
recorded = load_trace_widget(("sot", "sgd"), key="sg-trace", preselect=not state, live=run)
if recorded is not None:
    state.clear()
    state[trace_method(recorded)] = recorded


def options(name: str) -> dict:
    if name == "ar":
        return {}
    opts = {"skeleton": own, "point_tokens": int(point_tokens)}
    if name == "sgd":
        names = [n.strip() for n in extra.split(",") if n.strip()]
        opts.update(
            layer=int(layer), pool_models=[cached_model(n, settings.spec.device, settings.spec.dtype) for n in names]
        )
    return opts


served = settings.served


def start(name: str):
    """The run of ``name`` (ar, sot, sgd): through the served model when the sidebar names one, else local."""
    if served is not None:
        return lambda g: SERVED_METHODS[name](served, question, g)
    return lambda g: get_method(name).run(model, question, g, **options(name))


if served is not None:
    st.info(
        f"AR, SoT and SGD run through {served.model} at {api_base(served.url)} (client-side times; the pool and "
        "typed-skeleton settings above are local-only). Quality proxies use the local model."
    )


def dag_view(events: list, slot) -> None:
    """The live view of a run: its DAG, the waves filling in as they decode."""
    render_dag(events, key=f"sg-live-{len(events)}", container=slot)


warm_area = st.container()
running, box = st.empty(), st.empty()  # the timed runs, the results (components.method_page.Shown says why two)
if run:
    state.clear()
    st.session_state.pop("sg_judge", None)
    box.empty()  # at once: nothing of the last run lingers, greyed, under the new one
    try:
        with running.container():
            warm_up_all({name: start(name) for name in RUNS}, settings.gen, container=warm_area)
            view = st.container()
            for name, col in zip(RUNS, st.columns(3), strict=True):
                col.subheader(RUNS[name])
                state[name] = stream_run(start(name)(settings.gen), key=f"sg-live-{name}", container=col)
            if "sgd" in state:
                replay(state["sgd"], dag_view, container=view, title="SGD's skeleton graph")
    except RUN_ERRORS as exc:
        state.clear()
        box.warning(str(exc))
    running.empty()

if state:
    with box.container():
        render_skeleton_results(state)
        render_quality(model, state, load=lambda n: cached_model(n, settings.spec.device, settings.spec.dtype))
