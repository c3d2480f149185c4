"""Benchmark: the same code as `python -m core.bench`, with a progress bar, tables, plots and downloads."""

import json
import time

import streamlit as st

from components.bench_view import render_bench, runs_csv
from components.live import stop_button
from components.session import current_model, sidebar
from core.bench import run_bench
from core.metrics import time_left
from core.prompts import SUITE, load_prompts, parse_prompts
from core.registry import METHODS, RUN_ERRORS
from core.reports import recorded_reports
from core.runner import call_with_progress

st.title("Benchmark")
st.caption(
    "Runs `core.bench` on a prompt suite: one untimed warm-up per method, then every prompt through every "
    "method in turn. The same JSON as the command line comes out."
)
settings = sidebar()
source = st.radio("Prompt suite", ["shipped suite", "upload JSONL"], horizontal=True, key="bn_source")
prompts = None
try:
    if source == "shipped suite":
        prompts = load_prompts(SUITE)
    else:
        up = st.file_uploader(
            'JSONL, one {"id", "prompt", "category"} per line', type=["jsonl", "json", "txt"], key="bn_upload"
        )
        prompts = parse_prompts(up.getvalue().decode("utf-8"), up.name) if up is not None else None
except (ValueError, UnicodeDecodeError) as exc:
    st.warning(str(exc))
c1, c2, c3 = st.columns(3)
categories = sorted({p.category for p in prompts}) if prompts else []
category = c1.selectbox("Category", ["(all)", *categories], key="bn_category")
limit = c2.number_input("Prompts (0 = all)", 0, 1000, 4, key="bn_limit")
methods = c3.multiselect("Methods", [m for m in METHODS if m != "hf-assisted"], default=["ar", "hf"], key="bn_methods")
run = st.button("Run benchmark", type="primary", key="bn_run")
model = current_model(settings)
running, box = st.empty(), st.empty()  # the run's progress, its result (components.method_page.Shown: why two)

if run and model is not None and prompts:
    chosen = [p for p in prompts if category in ("(all)", p.category)]
    chosen = chosen[: int(limit)] if limit else chosen
    names = ["ar", *[m for m in methods if m != "ar"]] if "ar" in methods or methods else ["ar"]
    st.session_state.pop("bn_result", None)
    box.empty()
    with running.container():
        bar = st.progress(0.0, f"warming up {', '.join(names)} (one untimed run each)")
        stop_button("bn")
        t0 = time.perf_counter()

        def report(done: int, total: int, label: str) -> None:
            left = time_left(done, total, time.perf_counter() - t0)
            bar.progress(done / total, f"{done}/{total}: {label}" + (f", {left}" if left else ""))

        try:
            result = call_with_progress(run_bench, model, chosen, names, settings.gen, report=report)
            result["label"] = f"{', '.join(names)} on {len(chosen)} prompts, run {time.strftime('%H:%M:%S')}"
            st.session_state["bn_result"] = result
        except RUN_ERRORS as exc:
            box.warning(str(exc))
    running.empty()
elif run and not prompts:
    st.warning("Choose a prompt suite first.")

result = st.session_state.get("bn_result")
if result:
    with box.container():
        st.markdown(f"**This run: {result['label']}**")
        st.caption(f"{result['model']} on {result['device']}, {result['dtype']}; settings {result['config']}")
        render_bench(result, key="bn")
        a, b = st.columns(2)
        a.download_button("Download JSON", json.dumps(result, indent=1), "bench.json", "application/json", key="bn_json")
        b.download_button("Download CSV (one row per run)", runs_csv(result), "bench.csv", "text/csv", key="bn_csv")

st.subheader("Recorded results")
st.caption(
    "Bench results the developers measured and ship in assets/bench/, each with the machine it came from. "
    "Compare figures only within one result: a different machine, or a busy one, moves every figure."
)
reports, problems = recorded_reports()
for problem in problems:
    st.warning(problem)
if reports:
    names = [r.name for r in reports]
    chosen = reports[names.index(st.selectbox("Recorded result", names, key="bn_recorded"))]
    st.caption(chosen.describe() + f"; settings {chosen.result.get('config', {})}")
    render_bench(chosen.result, key="bn-rec")
else:
    st.info("No recorded results ship with this copy of the lab.")
