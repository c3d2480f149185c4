"""Blockwise: Blockwise Parallel Decoding with trained heads, and Kim et al.'s draft refinement."""

import streamlit as st

from components.answer import render_metrics, render_notices, render_token_strip
from components.blockwise import render_block_efficiency, render_head_analysis, render_lattice
from components.live import run_beside_ar
from components.session import cached_model, require_model, sidebar
from components.traces import download_trace, load_trace_widget
from core.methods import RUN_ERRORS, get_method
from core.methods.blockwise import bpd_heads_info
from core.methods.speculative import DEFAULT_EXIT_LAYER
from core.metrics import summarize
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
prompt = st.text_area("Prompt", "List the planets of the solar system in order.", key="bw_prompt", height=90)
c = st.columns(6)
method = c[0].selectbox("Draft", list(METHODS), format_func=METHODS.get, key="bw_method")
block = c[1].number_input("block size k", 2, 9, 4, key="bw_block")
refining = method != "bpd"
topk = c[2].number_input("lattice top-k", 1, 16, 4, key="bw_topk", disabled=not refining)
paths = c[3].number_input("drafts verified p", 1, 16, 3, key="bw_paths", disabled=not refining)
alpha = c[4].number_input("LM weight alpha", 0.0, 10.0, 0.5, 0.1, key="bw_alpha", disabled=not refining)
lm = c[5].selectbox("neural LM", list(LMS), format_func=LMS.get, key="bw_lm", disabled=method != "bpd-neural")
layer, draft_name = DEFAULT_EXIT_LAYER, ""
if method == "bpd-neural" and lm == "self":
    layer = st.number_input("exit layer e of the neural LM", 1, 64, DEFAULT_EXIT_LAYER, key="bw_layer")
elif method == "bpd-neural":
    draft_name = st.text_input("Draft model id or path", key="bw_draft_model")
run = st.button("Run", type="primary", key="bw_run")
model = require_model(settings)


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


state = st.session_state.setdefault("bw_results", {})
recorded = load_trace_widget(tuple(METHODS), key="bw-trace", preselect=not state)
if recorded is not None and not run:
    state.clear()
    state["bpd"] = recorded
if run:
    state.clear()

    def draw(ev, slot):
        if isinstance(ev, BlockStep):
            render_lattice(ev, key=f"bw-live-{ev.step}", container=slot)

    try:
        state["bpd"], state["ar"] = run_beside_ar(
            get_method(method).run(model, prompt, settings.gen, **options()),
            model=model,
            prompt=prompt,
            gen=settings.gen,
            key="bw",
            title=METHODS[method],
            live=draw,
        )
    except RUN_ERRORS as exc:
        st.warning(str(exc))

if "bpd" in state:
    events, ar = state["bpd"], state.get("ar")
    render_notices(events)
    m = summarize(events)
    left, right = st.columns(2)
    with left:
        st.markdown(
            "**Answer, coloured by the step that committed each token**; the small mark says who drafted it: "
            "**b** the base LM head, **1, 2, ...** head i (accepted)"
        )
        render_token_strip(events, key="bw-strip", marks=True)
        render_metrics(events, key="bw-metrics", ar_events=ar)
        cols = st.columns(3)
        cols[0].metric("block efficiency", f"{m.mean_accepted or 0:.2f}", help="tokens committed per target forward")
        cols[1].metric(
            "oracle block efficiency",
            f"{m.extras.get('oracle_block_efficiency', 0):.2f}",
            help="had the best path through each step's top-k lattice been drafted",
        )
        cols[2].metric("acceptance rate", f"{m.acceptance_rate or 0:.2f}", help="accepted head tokens / drafted")
        download_trace(events, key="bw-dl")
    with right:
        if ar:
            st.markdown("**AR, same prompt and settings**")
            render_token_strip(ar, key="bw-ar-strip")
            render_metrics(ar, key="bw-ar-metrics")
    st.subheader("Block efficiency per step")
    render_block_efficiency(events, key="bw-eff")
    blocks = [e for e in events if isinstance(e, BlockStep)]
    if blocks:
        st.subheader("The heads' top-k lattice at one step")
        pick = st.slider("step", 1, len(blocks), 1, key="bw_step") if len(blocks) > 1 else 1
        b = blocks[pick - 1]
        st.caption(
            f"Step {b.step}: {len(b.paths)} draft(s) verified; {b.accepted} head token(s) accepted along "
            f"draft {b.accepted_path} ({'plain BPD' if b.accepted_path == 0 else 'a rescored one'}), then the "
            f"base's own token '{b.final_text}'. Cells: each head's top tokens, coloured by the head's q_i."
        )
        render_lattice(b, key="bw-lattice")

info = bpd_heads_info(model.key, int(block))
st.subheader("Head analysis (Kim et al.)")
if info is None:
    st.info(
        f"No trained heads for {model.key} with k = {int(block)}; train them with "
        f"`python -m core.train heads --model ... --k {int(block)}`."
    )
else:
    render_head_analysis(info.metrics, info.losses, info.steps, key="bw-heads")
    oracle = next((v for k, v in info.metrics.items() if k.startswith("oracle_block_efficiency")), None)
    st.caption(
        f"Measured on {info.metrics.get('analysis_positions', 0)} held-out positions when the heads were trained "
        f"(`{info.command}`, seed {info.seed}): greedy block efficiency "
        f"{info.metrics.get('greedy_block_efficiency', 0):.2f}, oracle over the top-4 lattice {oracle or 0:.2f}."
    )
