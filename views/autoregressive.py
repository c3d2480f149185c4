"""Autoregressive baseline: the project's engine (ar) beside transformers' generate (hf)."""

import streamlit as st

from components.answer import render_metrics, render_token_strip
from components.charts import render_latency_chart
from components.live import CLOCK_NOTE, stream_run, warm_up_all
from components.race import render_race
from components.session import prefill_warning, require_model, sidebar
from components.traces import download_trace, example_prompt, load_trace_widget, trace_method
from core.metrics import decode_speedup, format_speedup, summarize
from core.registry import RUN_ERRORS, get_method

st.title("Autoregressive decoding")
st.caption(
    "One forward per token with a KV cache: the baseline every other method is measured against. "
    "Left: this project's engine. Right: transformers' own `generate`, same model, prompt and settings."
)

settings = sidebar()
prompt = st.text_area(
    "Prompt", example_prompt(("ar", "hf"), "Give three tips for learning a new language."), key="ar_prompt", height=100
)
run = st.button("Run", type="primary", key="ar_run")
model = require_model(settings)
prefill_warning(model, prompt, "ar_prompt")

results = st.session_state.setdefault("ar_results", {})
NAMES = ("ar", "hf")
recorded = load_trace_widget(("ar", "hf", "hf-pld"), key="ar-trace", preselect=not results, live=run)
if recorded is not None:
    results[trace_method(recorded).replace("hf-pld", "hf")] = recorded
warm_area = st.container()
running, box = st.empty(), st.empty()  # the timed runs, the results (components.method_page.Shown says why two)
if run:
    results.clear()
    box.empty()  # at once: nothing of the last run lingers, greyed, under the new one
    try:
        with running.container():
            starts = {name: lambda g, name=name: get_method(name).run(model, prompt, g) for name in NAMES}
            warm_up_all(starts, settings.gen, container=warm_area)
            for name, col in zip(NAMES, st.columns(2), strict=True):
                col.subheader(f"{name}: {get_method(name).title}")
                results[name] = stream_run(
                    get_method(name).run(model, prompt, settings.gen), key=f"ar-live-{name}", container=col
                )
    except RUN_ERRORS as exc:
        results.clear()
        box.warning(str(exc))
    running.empty()

if results:
    with box.container():
        if {"ar", "hf"} <= results.keys():
            hf = decode_speedup(summarize(results["hf"]), summarize(results["ar"]))
            st.markdown(
                f"**transformers' generate ran at {format_speedup(hf)} the speed of this lab's engine on this machine, "
                "the same model and prompt.**"
            )
        for name, col in zip(NAMES, st.columns(2), strict=True):
            if name not in results:
                continue
            with col:
                st.subheader(f"{name}: {get_method(name).title}")
                render_token_strip(results[name], key=f"ar-strip-{name}")
                render_metrics(
                    results[name], key=f"ar-metrics-{name}", ar_events=results.get("ar") if name != "ar" else None
                )
                download_trace(results[name], key=f"ar-dl-{name}")
        if len(results) > 1:
            st.caption(CLOCK_NOTE)
            render_race(results, key="ar-race")
        st.subheader("Per-token latency")
        render_latency_chart(results, key="ar-latency")
