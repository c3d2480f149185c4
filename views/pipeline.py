"""SPEED: pipelined execution with early-exit speculation, beside AR on the same prompt."""

import streamlit as st

from components.method_page import method_runs, render_beside_ar
from components.pipeline import render_hit_rates, render_speed_metrics, render_tick_steps, render_timeline
from components.session import require_model, sidebar
from core.heads import DEFAULT_EXIT_LAYER
from core.heads.measure import load_hit_rates
from core.registry import get_method
from core.trace import PipelineTick

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


def draw(events, slot):
    ticks = [e for e in events if isinstance(e, PipelineTick)]
    if ticks:
        render_timeline(ticks, key=f"sp-live-{ticks[-1].tick}", container=slot)


speed, ar = method_runs(
    "sp",
    ("speed",),
    run=run,
    start=lambda g: get_method("speed").run(model, prompt, g, layer=int(layer), stages=int(stages)),
    model=model,
    prompt=prompt,
    gen=settings.gen,
    title="SPEED",
    live=draw,
)
if speed is not None:
    render_beside_ar("sp", speed, ar, extra=lambda: render_speed_metrics(speed))
    ticks = [e for e in speed if isinstance(e, PipelineTick)]
    if ticks:
        st.subheader("Timeline")
        render_tick_steps(ticks, key="sp-timeline", slider_key="sp_tick")

st.subheader("Early-exit hit rate per layer")
render_hit_rates(load_hit_rates(model.key), model.name, key="sp-hit-rates")
