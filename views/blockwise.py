"""Blockwise: Blockwise Parallel Decoding with trained heads, and Kim et al.'s draft refinement."""

import streamlit as st

from components.blockwise import render_block_efficiency, render_block_metrics, render_head_file, render_lattice_steps
from components.method_page import method_runs, render_beside_ar
from components.session import bounded_number, cached_model, prefill_warning, require_model, sidebar
from components.traces import example_prompt
from core.blockwise import BLOCK, bpd_heads_info
from core.heads import fitted_exit_layer
from core.registry import get_method
from core.trace import BlockStep

METHODS = {
    "bpd": "plain BPD (each head's argmax)",
    "bpd-ngram": "n-gram rescoring (global)",
    "bpd-neural": "neural LM rescoring (local beam)",
}
LMS = {"self": "first layers + exit head", "model": "draft model (same tokenizer)"}

st.title("Blockwise parallel decoding")
st.caption(
    "k - 1 trained heads read the last hidden state h_t and guess tokens t+2 ... t+k; one target forward "
    "verifies the block, keeps the longest prefix the model agrees with plus its own next token, and its "
    "hidden state drafts the next block. Refinement rescores each head's top-k lattice with a language model "
    "and verifies the p best drafts in one tree forward. Lossless: at temperature 0 the answer is AR's."
)
settings = sidebar()
model = require_model(settings)
layers = model.config.num_hidden_layers
prompt = st.text_area("Prompt", example_prompt(tuple(METHODS), "List the planets."), key="bw_prompt", height=90)
prefill_warning(model, prompt, "bw_prompt")
c = st.columns(6)
method = c[0].selectbox("Draft", list(METHODS), format_func=METHODS.get, key="bw_method")
block = c[1].number_input("block size k", 2, 9, BLOCK, key="bw_block")
refining = method != "bpd"
topk = c[2].number_input("lattice top-k", 1, 16, 4, key="bw_topk", disabled=not refining)
paths = c[3].number_input("drafts verified p", 1, 16, 3, key="bw_paths", disabled=not refining)
alpha = c[4].number_input("LM weight alpha", 0.0, 10.0, 0.5, 0.1, key="bw_alpha", disabled=not refining)
lm = c[5].selectbox("neural LM", list(LMS), format_func=LMS.get, key="bw_lm", disabled=method != "bpd-neural")
layer, draft_name = fitted_exit_layer(layers, None), ""
if method == "bpd-neural" and lm == "self":
    layer = bounded_number(st, "exit layer e of the neural LM", 1, layers - 1, layer, "bw_layer")
elif method == "bpd-neural":
    draft_name = st.text_input("Draft model id or path", key="bw_draft_model")
heads = bpd_heads_info(model.key, int(block))
if heads is None:
    st.warning(f"No trained heads for {model.key} with k = {int(block)}: untrained heads draft nothing useful.")
run = st.button("Run", type="primary", key="bw_run")


def options() -> dict:
    opts = {"block": int(block)}
    if refining:
        opts.update(topk=int(topk), paths=int(paths), alpha=float(alpha))
    if method == "bpd-neural":
        opts.update(draft=lm, layer=int(layer))
        if lm == "model":
            opts["draft_model"] = cached_model(
                draft_name.strip() or "embedded", settings.spec.device, settings.spec.dtype
            )
    return opts


def draw(events, slot):
    blocks = [e for e in events if isinstance(e, BlockStep)]
    if blocks:
        render_lattice_steps(blocks[-1:], key=f"bw-live-{len(events)}", container=slot)


shown = method_runs(
    "bw",
    tuple(METHODS),
    run=run,
    start=lambda g: get_method(method).run(model, prompt, g, **options()),
    model=model,
    prompt=prompt,
    gen=settings.gen,
    title=METHODS[method],
    live=draw,
)
events, ar = shown.method, shown.ar
if events is not None:
    with shown.box.container():
        render_beside_ar(
            "bw",
            events,
            ar,
            caption="**Answer, coloured by the step that committed each token**; the small mark says who drafted "
            "it: **b** the base LM head, **1, 2, ...** head i (accepted)",
            marks=True,
            extra=lambda: render_block_metrics(events),
            model=model,
            controls={"block": int(block), "max_new_tokens": settings.gen.max_new_tokens, "temperature": settings.gen.sampling.temperature},
        )
        st.subheader("Block efficiency per step")
        render_block_efficiency(events, key="bw-eff")
        blocks = [e for e in events if isinstance(e, BlockStep)]
        if blocks:
            st.subheader("The heads' top-k lattice at one step")
            render_lattice_steps(blocks, key="bw-lattice", slider_key="bw_step")

st.subheader("Head analysis (Kim et al.)")
render_head_file(heads, model.key, int(block), key="bw-heads")
