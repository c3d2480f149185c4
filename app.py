"""Decoding Lab: a Streamlit app over the decoding library in core/.

Run with `make run`. Every page draws the shared sidebar (model, device, dtype,
generation settings) through ``components.session.sidebar``. Pages live in views/, not
pages/, which Streamlit would also serve as a legacy multipage app on deep links.
"""

import streamlit as st

st.set_page_config(page_title="Decoding Lab", page_icon=":material/bolt:", layout="wide")

# A cold start imports torch and transformers (10-30 s on 2 cores): say so instead of a blank page.
with st.spinner("Starting Decoding Lab: loading the decoding library (first start only)…"):
    import core.registry  # noqa: F401

pages = [
    st.Page("views/autoregressive.py", title="Autoregressive", icon=":material/arrow_forward:", default=True),
    st.Page("views/draft_trees.py", title="Draft trees", icon=":material/account_tree:"),
    st.Page("views/blockwise.py", title="Blockwise", icon=":material/view_week:"),
    st.Page("views/pipeline.py", title="SPEED pipeline", icon=":material/fast_forward:"),
    st.Page("views/skeleton_graph.py", title="Skeleton graph", icon=":material/hub:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/benchmark.py", title="Benchmark", icon=":material/bar_chart:"),
    st.Page("views/how_it_works.py", title="How it works", icon=":material/menu_book:"),
]
st.navigation(pages).run()
