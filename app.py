"""Decoding Lab: a Streamlit app over the decoding library in core/.

Run with `make run`. The app opens on the start page (views/start.py), which imports nothing heavy and so shows
at once on a cold start while the library loads behind it. Every other page draws the shared sidebar (model,
device, dtype, generation settings) through ``components.session.sidebar``. Pages live in views/, not pages/,
which Streamlit would also serve as a legacy multipage app on deep links.
"""

import sys

import streamlit as st

st.set_page_config(page_title="Decoding Lab", page_icon=":material/bolt:", layout="wide")

pages = [
    st.Page("views/start.py", title="Start", icon=":material/home:", default=True),
    st.Page("views/autoregressive.py", title="Autoregressive", icon=":material/arrow_forward:"),
    st.Page("views/draft_trees.py", title="Draft trees", icon=":material/account_tree:"),
    st.Page("views/blockwise.py", title="Blockwise", icon=":material/view_week:"),
    st.Page("views/pipeline.py", title="SPEED pipeline", icon=":material/fast_forward:"),
    st.Page("views/skeleton_graph.py", title="Skeleton graph", icon=":material/hub:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/benchmark.py", title="Benchmark", icon=":material/bar_chart:"),
    st.Page("views/how_it_works.py", title="How it works", icon=":material/menu_book:"),
]
page = st.navigation(pages)
if page.title != "Start" and "core.registry" not in sys.modules:
    # a cold start on a page that needs the library (10-30 s on 2 cores): say so at once, not a blank page
    note = st.empty()
    note.info("Starting Decoding Lab: loading the decoding library (PyTorch, transformers), first visit only…")
    import core.registry  # noqa: F401

    note.empty()
page.run()
