"""Draft trees: speculative decoding with a draft chain or tree, verified by RRS, RRSw or SpecHub."""

import pandas as pd
import streamlit as st

from components.answer import render_metrics, render_notices, render_token_strip
from components.live import run_beside_ar
from components.session import require_model, sidebar
from components.traces import download_trace, load_trace_widget
from components.tree import explain_step, render_acceptance_per_depth, render_tree_step
from core.methods import RUN_ERRORS, get_method
from core.methods.speculative import DEFAULT_EXIT_LAYER
from core.metrics import acceptance_per_depth, summarize
from core.trace import TreeStep

SOURCES = {
    "self": "self-draft (first layers + exit head)",
    "lookup": "prompt lookup (n-gram)",
    "model": "draft model (same tokenizer)",
}
RULES = {"rrs": "RRS (with replacement)", "rrsw": "RRS without replacement", "spechub": "SpecHub (k = 2)"}

st.title("Draft trees")
st.caption(
    "A draft proposes a tree of k candidates per node and depth L; the target verifies the whole tree in "
    "one forward with a tree attention mask and keeps the accepted path. All rules are lossless: at "
    "temperature 0 the answer is AR's, token for token."
)
settings = sidebar()
prompt = st.text_area("Prompt", "Explain how a bicycle works in a few sentences.", key="dt_prompt", height=90)
c1, c2, c3, c4, c5 = st.columns(5)
source = c1.selectbox("Draft source", list(SOURCES), format_func=SOURCES.get, key="dt_source")
rule = c2.selectbox("Rule", list(RULES), format_func=RULES.get, key="dt_rule")
k = c3.number_input("k (children per node)", 1, 4, 2, key="dt_k")
depth = c4.number_input("depth L", 1, 8, 4, key="dt_depth")
layer = c5.number_input("exit layer e", 1, 64, DEFAULT_EXIT_LAYER, key="dt_layer")
draft_name = st.text_input("Draft model id or path", key="dt_draft_model") if source == "model" else ""
b1, b2 = st.columns([1, 4])
run = b1.button("Run", type="primary", key="dt_run")
compare = b2.button("Compare rules (RRS, RRSw, SpecHub at k = 2)", key="dt_compare")

model = require_model(settings)


def options(rule_name: str, width: int) -> dict:
    opts = {
        "name": rule_name,
        "rule": rule_name,
        "k": int(width),
        "depth": int(depth),
        "draft": source,
        "layer": int(layer),
    }
    if source == "model":
        from components.session import cached_model

        opts["draft_model"] = cached_model(draft_name.strip() or "embedded", settings.spec.device, settings.spec.dtype)
    return opts


state = st.session_state.setdefault("dt_results", {})
recorded = load_trace_widget(("spec", "pld", "rrs", "rrsw", "spechub"), key="dt-trace", preselect=not state)
if recorded is not None and not (run or compare):
    state.clear()
    state["spec"] = recorded
try:
    if run:
        state.clear()

        def draw(ev, slot):
            if isinstance(ev, TreeStep):
                render_tree_step(ev, key=f"dt-live-{ev.step}", container=slot)

        state["spec"], state["ar"] = run_beside_ar(
            get_method("rrs").run(model, prompt, settings.gen, **options(rule, k)),
            model=model,
            prompt=prompt,
            gen=settings.gen,
            key="dt",
            title=f"{RULES[rule]}, {SOURCES[source]}",
            live=draw,
        )
    if compare:
        state.clear()
        progress = st.progress(0.0, "comparing rules")
        for i, name in enumerate(["ar", *RULES]):
            progress.progress(i / 4, f"running {name}")
            run_it = get_method(name).run(model, prompt, settings.gen, **({} if name == "ar" else options(name, 2)))
            state[f"cmp-{name}"] = list(run_it)
        progress.progress(1.0, "done")
except RUN_ERRORS as exc:
    st.warning(str(exc))

if "spec" in state:
    spec, ar = state["spec"], state.get("ar")
    render_notices(spec)
    left, right = st.columns(2)
    with left:
        st.markdown("**Answer, coloured by the step that committed each token** (hover: step and source)")
        render_token_strip(spec, key="dt-strip")
        render_metrics(spec, key="dt-metrics", ar_events=ar)
        m = summarize(spec)
        download_trace(spec, key="dt-dl")
        st.caption(
            f"mean accepted length {m.mean_accepted or 0:.2f} tokens per target forward; "
            f"acceptance rate {m.acceptance_rate or 0:.2f}"
        )
    with right:
        if ar:
            render_token_strip(ar, key="dt-ar-strip")
            render_metrics(ar, key="dt-ar-metrics")
    trees = [e for e in spec if isinstance(e, TreeStep)]
    if trees:
        st.subheader("Step through the run")
        pick = st.slider("step", 1, len(trees), len(trees), key="dt_step") if len(trees) > 1 else 1
        st.write(explain_step(trees[pick - 1]))
        render_tree_step(trees[pick - 1], key="dt-tree-pick")
        render_acceptance_per_depth({"this run": acceptance_per_depth(spec)}, key="dt-depth")

if "cmp-ar" in state:
    ar = summarize(state["cmp-ar"])
    rows, rates = [], {}
    for name in RULES:
        events = state[f"cmp-{name}"]
        m = summarize(events)
        rates[name] = acceptance_per_depth(events)
        rows.append(
            {
                "rule": RULES[name],
                "mean accepted length": m.mean_accepted,
                "acceptance rate": m.acceptance_rate,
                "tokens/s": m.tok_s,
                "speedup vs AR": m.tok_s / ar.tok_s if ar.tok_s else None,
                "identical to AR": m.output_ids == ar.output_ids,
            }
        )
    rows.append(
        {
            "rule": "AR",
            "mean accepted length": None,
            "acceptance rate": None,
            "tokens/s": ar.tok_s,
            "speedup vs AR": 1.0,
            "identical to AR": True,
        }
    )
    st.subheader("Rules compared on the same prompt and settings")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="dt-cmp-table")
    render_acceptance_per_depth(rates, key="dt-cmp-depth")
