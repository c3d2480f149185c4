"""Compare: one prompt, one model, any methods side by side with AR (always included)."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components.answer import render_answer_strip, render_metrics, render_notices
from components.cost import render_cost_comparison
from components.live import CLOCK_NOTE, stream_run, warm_up_all
from components.race import render_race
from components.session import current_model, prefill_warning, sidebar
from core.models import EMBEDDED
from components.tables import render_table
from components.traces import download_trace, load_trace_widget, trace_method
from core.metrics import decode_speedup, summarize
from core.registry import METHODS, RUN_ERRORS, get_method
from core.served import SERVED, SERVED_METHODS, base_method, baseline

CHOOSABLE = [name for name in METHODS if name not in ("ar", "hf-assisted")]  # hf-assisted needs a draft model

st.title("Compare methods")
st.caption(
    "Every method on the same prompt, model and settings, one after another; AR is always included. "
    "Results stay until you clear them. Tokens are coloured by the step that committed them."
)
autoplay = st.session_state.pop("cmp_autoplay", False)  # the start page's button: play this page on the embedded model
if autoplay:
    st.session_state["model_choice"] = EMBEDDED
settings = sidebar()
prompt = st.text_area("Prompt", "Give three tips for writing clear emails.", key="cmp_prompt", height=90)
served = settings.served if settings else None
offered = CHOOSABLE + ([name + SERVED for name in SERVED_METHODS] if served is not None else [])
chosen = st.multiselect(
    "Methods",
    offered,
    default=["hf", "pld", "rrs"],
    key="cmp_methods",
    format_func=lambda n: (
        f"{n}: {METHODS[base_method(n)].title}" + (" (through the server)" if n.endswith(SERVED) else "")
    ),
)


def start(name: str):
    """The run of ``name``; a name ending in @served runs through the sidebar's server."""
    if name.endswith(SERVED):
        return lambda g: SERVED_METHODS[base_method(name)](served, prompt, g)
    return lambda g: get_method(name).run(model, prompt, g)


def render_results(results: dict, model) -> None:
    """The table and chart of every run beside AR, the race, the cost model, and each run's answer and figures."""
    rows = []
    for name, events in results.items():
        m = summarize(events)
        ar = summarize(results[baseline(name)]) if baseline(name) in results else None  # served: ar@served
        rows.append(
            {
                "method": name,
                "tokens": m.tokens,
                "tokens/s": m.decode_tok_s,
                "speedup vs AR": decode_speedup(m, ar) if ar else None,
                "mean accepted length": m.mean_accepted,
                "acceptance rate": m.acceptance_rate,
                "identical to AR": (m.output_ids == ar.output_ids) if ar and not name.endswith(SERVED) else None,
            }
        )
    table = pd.DataFrame(rows)
    st.caption(CLOCK_NOTE)
    render_table(rows, key="cmp-table")
    fig = go.Figure(go.Bar(x=table["method"], y=table["speedup vs AR"], marker_color="#2563eb"))
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(height=280, yaxis_title="speedup vs AR (decode clock)", margin={"t": 20, "b": 40})
    st.plotly_chart(fig, key="cmp-speedups", width="stretch")
    render_race(results, key="cmp-race")
    render_cost_comparison(results, model, key="cmp-cost")
    names = list(results)
    for row in range(0, len(names), 3):
        for col, name in zip(st.columns(3), names[row : row + 3], strict=False):
            with col:
                st.markdown(f"**{name}**")
                render_notices(results[name])
                render_answer_strip(results[name], key=f"cmp-strip-{name}")
                render_metrics(
                    results[name], key=f"cmp-metrics-{name}", ar_events=results.get("ar") if name != "ar" else None
                )
                download_trace(results[name], key=f"cmp-dl-{name}")


b1, b2 = st.columns([1, 5])
run = b1.button("Run", type="primary", key="cmp_run") or autoplay
clear = b2.button("Clear results", key="cmp_clear")
results: dict = st.session_state.setdefault("cmp_results", {})
if clear:
    results.clear()
    st.session_state.pop("cmp_errors", None)
uploaded = load_trace_widget(tuple(METHODS), key="cmp-trace")
if uploaded is not None:
    results[f"{trace_method(uploaded)} (recorded)"] = uploaded

model = current_model(settings)
if model is not None:
    prefill_warning(model, prompt, "cmp_prompt")
warm_area = st.container()
running, box = st.empty(), st.empty()  # the timed runs, the results (components.method_page.Shown says why two)
if run and model is not None:
    chosen = [n for n in chosen if n in offered]  # a served method stays chosen only while a server is set
    names = ["ar", *(["ar" + SERVED] if any(n.endswith(SERVED) for n in chosen) else []), *chosen]
    names = list(dict.fromkeys(names))
    box.empty()  # at once: nothing of the last run lingers, greyed, under the new one
    errors = st.session_state["cmp_errors"] = []
    with running.container():
        progress = st.progress(0.0, "warming up every method")
        try:
            warm_up_all({name: start(name) for name in names}, settings.gen, container=warm_area)
            for i, name in enumerate(names):
                progress.progress(i / len(names), f"timing {name} ({i + 1}/{len(names)})")
                try:
                    st.markdown(f"**{name}**")
                    results[name] = stream_run(start(name)(settings.gen), key=f"cmp-live-{name}")
                except RUN_ERRORS as exc:
                    errors.append(f"{name}: {exc}")
        except RUN_ERRORS as exc:
            errors.append(str(exc))
    running.empty()
elif run:
    st.info("Choose a model that loads in the sidebar to run.")

if results or st.session_state.get("cmp_errors"):
    with box.container():
        for error in st.session_state.get("cmp_errors", []):
            st.warning(error)
        if results:
            render_results(results, model)
