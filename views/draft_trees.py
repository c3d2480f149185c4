"""Draft trees: speculative decoding with a draft chain or tree, verified by RRS, RRSw or SpecHub."""

from dataclasses import replace

import streamlit as st

from components.cost import render_verify_curve
from components.explorer import render_explorer, tree_html
from components.method_page import method_runs, render_beside_ar
from components.session import bounded_number, cached_model, prefill_warning, require_model, sidebar
from components.traces import example_prompt, run_greedy
from components.tree import (
    RULES,
    compare_rules,
    explain_step,
    most_informative,
    render_acceptance_per_depth,
    render_rule_comparison,
    render_tree_step,
)
from core.heads import fitted_exit_layer
from core.eagle.head import feature_head_path
from core.metrics import acceptance_per_depth, summarize
from core.registry import RUN_ERRORS, get_method
from core.speculative.drafts import default_depth
from core.eagle import MAX_CHAIN, MAX_DYNAMIC_NODES, DynamicTree
from core.speculative.tree import MAX_TREE_NODES, full_tree_size
from core.trace import TreeStep

TRACES = ("eagle", "spec", "pld", "rrs", "rrsw", "spechub")
SOURCES = {
    "eagle": "EAGLE feature head (one layer over the model's features)",
    "self": "self-draft (first layers + exit head)",
    "lookup": "prompt lookup (n-gram)",
    "model": "draft model (same tokenizer)",
}
SHAPES = {"dynamic": "dynamic (EAGLE-2: most confident nodes)", "full": "k-ary, drawn by the rule"}

st.title("Draft trees")
st.caption(
    "A draft proposes a tree of k candidates per node and depth L; the target verifies the whole tree in "
    "one forward with a tree attention mask and keeps the accepted path. All rules are lossless: at "
    "temperature 0 the answer is AR's, token for token."
)
settings = sidebar()
model = require_model(settings)
layers = model.config.num_hidden_layers
prompt = st.text_area("Prompt", example_prompt(TRACES, "Explain how a bicycle works."), key="dt_prompt", height=90)
prefill_warning(model, prompt, "dt_prompt")
c0, c1, c2, c3, c4, c5 = st.columns(6)
has_eagle = feature_head_path(model.key).is_file()  # the default where this model has a trained feature head
source = c0.selectbox(
    "Draft source", list(SOURCES), index=0 if has_eagle else 1, format_func=SOURCES.get, key="dt_source"
)
shape = c1.selectbox("Tree", list(SHAPES), format_func=SHAPES.get, key="dt_shape") if source == "eagle" else "full"
dynamic = shape == "dynamic"
rule = "rrs" if dynamic else c2.selectbox("Rule", list(RULES), format_func=RULES.get, key="dt_rule")
if dynamic:
    k = c3.number_input("nodes expanded per level", 1, 16, DynamicTree.topk, key="dt_topk")
    depth = c4.number_input("depth L (at most)", 1, 12, DynamicTree.depth, key="dt_dyn_depth")
    max_nodes = c5.number_input("most nodes verified", 2, MAX_DYNAMIC_NODES, DynamicTree.max_nodes, key="dt_max_nodes")
    lookup = c2.number_input("tokens copied from the context", 0, MAX_CHAIN, DynamicTree.lookup, key="dt_lookup")
    st.caption(
        "Each step grows the tree where the draft is most confident: at every level the most confident nodes "
        "are expanded into their most likely children, to the depth set; then it keeps the n best nodes (n at most "
        "the limit), n chosen so that the expected accepted tokens per unit of time, with the verify cost v(n) of "
        "this device, is highest. Verified greedily at temperature 0 and by drawing from p (match) above it. "
        "The tokens that followed the latest earlier occurrence of the context's last words are grafted on "
        "the tree too, ranked by how often such copies were right so far in the run (0 turns this off); "
        "accepted copies are marked 'lookup'."
    )
else:
    k = c3.number_input("k (children per node)", 1, 4, 2, key="dt_k")
    depth = c4.number_input("depth L", 1, 8, default_depth(source), key=f"dt_depth_{source}")  # per source
    layer = bounded_number(c5, "exit layer e", 1, layers - 1, fitted_exit_layer(layers, None), "dt_layer")
    nodes = full_tree_size(int(k), int(depth))
    st.caption(
        f"This tree has {nodes:,} nodes; one forward verifies at most {MAX_TREE_NODES} (a larger tree is refused)."
    )
render_verify_curve(model, key="dt-vn")
draft_name = st.text_input("Draft model id or path", key="dt_draft_model") if source == "model" else ""
b1, b2, b3 = st.columns([1, 3, 3])
run = b1.button("Run", type="primary", key="dt_run")
compare = b2.button("Compare rules (RRS, RRSw, SpecHub at k = 2)", key="dt_compare")
compare_sampled = b3.button("Compare rules at temperature 1 (where they differ)", key="dt_compare_t1")


def options(rule_name: str, width: int) -> dict:
    opts = {"name": rule_name, "rule": rule_name, "k": int(width), "depth": int(depth), "draft": source}
    if source != "eagle":
        opts["layer"] = int(layer)
    if source == "model":
        opts["draft_model"] = cached_model(draft_name.strip() or "embedded", settings.spec.device, settings.spec.dtype)
    return opts


def start(gen):
    if dynamic:
        shape = {"depth": int(depth), "topk": int(k), "max_nodes": int(max_nodes), "lookup": int(lookup)}
        return get_method("eagle").run(model, prompt, gen, **shape)
    return get_method("rrs").run(model, prompt, gen, **options(rule, k))


def draw(events, slot):
    trees = [e for e in events if isinstance(e, TreeStep)]
    if trees:
        render_tree_step(trees[-1], key=f"dt-live-{len(events)}", container=slot)


shown = method_runs(
    "dt",
    TRACES,
    run=run,
    start=start,
    model=model,
    prompt=prompt,
    gen=settings.gen,
    title=f"EAGLE-2 dynamic tree, {SOURCES[source]}" if dynamic else f"{RULES[rule]}, {SOURCES[source]}",
    live=draw,
)
spec, ar = shown.method, shown.ar
if spec is not None:
    with shown.box.container():
        m = summarize(spec)
        render_beside_ar(
            "dt",
            spec,
            ar,
            caption="**Answer, coloured by the step that committed each token** (hover: step and source)",
            extra=lambda: st.caption(
                f"mean accepted length {m.mean_accepted or 0:.2f} tokens per target forward; "
                f"acceptance rate {m.acceptance_rate or 0:.2f}"
            ),
            model=model,
            controls={"depth": int(depth), "max_new_tokens": settings.gen.max_new_tokens, "temperature": settings.gen.sampling.temperature},
        )
        trees = [e for e in spec if isinstance(e, TreeStep)]
        if trees:
            st.subheader("Step through the run")
            opening = most_informative(trees)
            pick = st.slider("step", 1, len(trees), opening, key="dt_step") if len(trees) > 1 else 1
            st.write(explain_step(trees[pick - 1], run_greedy(spec)))
            chart, explore = st.tabs(["Tree", "Explore it (drag, zoom, click a node)"])
            with chart:
                render_tree_step(trees[pick - 1], key="dt-tree-pick")
            with explore:
                render_explorer(tree_html(trees[pick - 1]))
            render_acceptance_per_depth({"this run": acceptance_per_depth(spec)}, key="dt-depth")

if compare or compare_sampled:
    gen = (
        replace(settings.gen, sampling=replace(settings.gen.sampling, temperature=1.0))
        if compare_sampled
        else settings.gen
    )
    try:
        st.session_state["dt_rules"] = compare_rules(
            lambda name, g: get_method(name).run(model, prompt, g, **({} if name == "ar" else options(name, 2))), gen
        )
    except RUN_ERRORS as exc:
        st.warning(str(exc))
if "dt_rules" in st.session_state:
    sampled = "" if run_greedy(st.session_state["dt_rules"]["rrs"]) else " at temperature 1"
    st.subheader(f"Rules compared on the same prompt and settings{sampled}")
    render_rule_comparison(st.session_state["dt_rules"], key="dt-cmp")
