"""The start page: what the lab is, a line per method with its page, and one button that plays the Compare page.

It imports nothing heavy (no torch), so it shows at once on a cold start; it starts loading the decoding library
in the background, so the page a visitor opens next is ready sooner."""

import importlib
import sys
import threading

import streamlit as st

from components import style

style.apply()
if "core.registry" not in sys.modules and not any(t.name == "dl-import" for t in threading.enumerate()):
    threading.Thread(target=importlib.import_module, args=("core.registry",), name="dl-import", daemon=True).start()

st.title("Decoding Lab")
st.markdown(
    "Decoding Lab runs parallel and speculative decoding methods on a real language model and shows them live, "
    "each beside plain autoregressive (AR) decoding on the same model and prompt. "
    "Every speed it shows is measured on this machine, the way `python -m core.bench` measures it, and every "
    "lossless method's answer is AR's, token for token. "
    "It runs the small SmolLM2-135M-Instruct that ships with it, or any Hugging Face model you give it."
)

if st.button("Play the Compare page on the embedded model", type="primary", key="start_play"):
    st.session_state["cmp_autoplay"] = True
    st.switch_page("views/compare.py")

METHODS = [
    ("views/autoregressive.py", "Autoregressive", "one forward per token: the baseline, beside transformers' generate"),
    ("views/draft_trees.py", "Draft trees", "a draft proposes a tree, one forward verifies it (EAGLE, RRS, SpecHub)"),
    ("views/blockwise.py", "Blockwise", "trained heads guess the next tokens, refined by a language model"),
    ("views/pipeline.py", "SPEED pipeline", "an early-exit guess of the next token enters the pipe before its turn"),
    ("views/skeleton_graph.py", "Skeleton graph", "a skeleton of points, decoded in parallel waves (SoT, SGD)"),
    ("views/compare.py", "Compare", "any methods on one prompt, side by side with AR"),
    ("views/benchmark.py", "Benchmark", "the command-line benchmark on a prompt suite, with recorded results"),
    ("views/how_it_works.py", "How it works", "each method in a few paragraphs and a diagram"),
]
for page, title, what in METHODS:
    left, right = st.columns([1, 3])
    left.page_link(page, label=title, icon=":material/arrow_forward:")
    right.markdown(what)

st.caption(
    "Teaching with it? The presentation mode (large type, no sidebar, one chart a screen) is a switch at the top of "
    "the sidebar, or add `?present=1` to the address."
)
