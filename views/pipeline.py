"""SPEED: pipelined execution with early-exit speculation, beside AR on the same prompt."""

import streamlit as st

from components.method_page import method_runs, render_beside_ar
from components.pipeline import render_hit_rates, render_speed_metrics, render_tick_steps, render_timeline
from components.session import bounded_number, prefill_warning, require_model, sidebar
from components.traces import example_prompt
from core.heads import fitted_exit_layer
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
model = require_model(settings)
layers = model.config.num_hidden_layers
prompt = st.text_area("Prompt", example_prompt(("speed",), "Write a short poem."), key="sp_prompt", height=90)
prefill_warning(model, prompt, "sp_prompt")
c1, c2, c3 = st.columns([1, 1, 3])
layer = bounded_number(c1, "exit layer e", 1, layers - 1, fitted_exit_layer(layers, None), "sp_layer")
stages = bounded_number(c2, "stages", 2, min(6, layers - layer + 1), 2, "sp_stages")  # a stage needs a layer
run = c3.button("Run", type="primary", key="sp_run")


def draw(events, slot):
    ticks = [e for e in events if isinstance(e, PipelineTick)]
    if ticks:
        render_timeline(ticks, key=f"sp-live-{len(events)}", container=slot)


shown = method_runs(
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
speed, ar = shown.method, shown.ar
if speed is not None:
    with shown.box.container():
        controls = {"layer": int(layer), "stages": int(stages), "max_new_tokens": settings.gen.max_new_tokens, "temperature": settings.gen.sampling.temperature}
        render_beside_ar("sp", speed, ar, extra=lambda: render_speed_metrics(speed), model=model, controls=controls)
        ticks = [e for e in speed if isinstance(e, PipelineTick)]
        if ticks:
            st.subheader("Timeline")
            render_tick_steps(ticks, key="sp-timeline", slider_key="sp_tick")

st.subheader("Early-exit hit rate per layer")
render_hit_rates(load_hit_rates(model.key), model.name, key="sp-hit-rates")
