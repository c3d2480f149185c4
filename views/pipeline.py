"""SPEED: pipelined execution with early-exit speculation, beside AR on the same prompt."""

import json

import streamlit as st

from components.answer import render_metrics, render_notices, render_token_strip
from components.live import run_beside_ar
from components.pipeline import explain_tick, hit_rate_figure, render_timeline
from components.session import require_model, sidebar
from components.traces import download_trace, load_trace_widget
from core.methods import RUN_ERRORS, get_method
from core.methods.pipeline import DEFAULT_EXIT_LAYER
from core.metrics import summarize
from core.trace import PipelineTick
from core.train import hit_rate_path

st.title("SPEED pipeline")
st.caption(
    "The layers are split into stages. While a token runs through the later stages, an early-exit guess of "
    "the next token already runs through the earlier ones; when the real token is known, a right guess "
    "keeps its work (hit) and a wrong one is flushed. The output is exactly AR's."
)
settings = sidebar()
prompt = st.text_area("Prompt", "Write a short poem about the sea.", key="sp_prompt", height=90)
c1, c2, c3 = st.columns([1, 1, 3])
layer = c1.number_input("exit layer e", 1, 64, DEFAULT_EXIT_LAYER, key="sp_layer")
stages = c2.number_input("stages", 2, 6, 2, key="sp_stages")
run = c3.button("Run", type="primary", key="sp_run")

model = require_model(settings)

state = st.session_state.setdefault("sp_results", {})
recorded = load_trace_widget(("speed",), key="sp-trace", preselect=not state)
if recorded is not None and not run:
    state.clear()
    state["speed"] = recorded
if run:
    state.clear()
    ticks: list = []

    def draw(ev, slot):
        if isinstance(ev, PipelineTick):
            ticks.append(ev)
            if ev.tick % 4 == 0:  # redraw every few ticks: a plotly figure per tick would slow the run's page
                render_timeline(ticks, key=f"sp-live-{ev.tick}", container=slot)

    try:
        state["speed"], state["ar"] = run_beside_ar(
            get_method("speed").run(model, prompt, settings.gen, layer=int(layer), stages=int(stages)),
            model=model,
            prompt=prompt,
            gen=settings.gen,
            key="sp",
            title="SPEED",
            live=draw,
        )
    except RUN_ERRORS as exc:
        st.warning(str(exc))

if "speed" in state:
    speed, ar = state["speed"], state.get("ar")
    render_notices(speed)
    m = summarize(speed)
    extras = m.extras
    left, right = st.columns(2)
    with left:
        render_token_strip(speed, key="sp-strip")
        download_trace(speed, key="sp-dl")
        render_metrics(speed, key="sp-metrics", ar_events=ar)
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
    with right:
        if ar:
            render_token_strip(ar, key="sp-ar-strip")
            render_metrics(ar, key="sp-ar-metrics")
    ticks = [e for e in speed if isinstance(e, PipelineTick)]
    if ticks:
        st.subheader("Timeline")
        render_timeline(ticks, key="sp-timeline")
        pick = st.slider("tick", 1, len(ticks), 1, key="sp_tick") if len(ticks) > 1 else 1
        st.write(explain_tick(ticks[pick - 1]))

st.subheader("Early-exit hit rate per layer")
path = hit_rate_path(model)
if path.is_file():
    data = json.loads(path.read_text())
    st.plotly_chart(hit_rate_figure(data), key="sp-hit-rates", width="stretch")
    st.caption(
        f"Measured on {data['positions']} positions of the model's own continuations of the prompt suite "
        f"(`python -m core.train hit-rates`); trained heads on {data['held_out_positions']} held-out positions."
    )
else:
    st.info(f"No hit-rate curve for {model.key} yet: run `python -m core.train hit-rates --model {model.name}`.")
