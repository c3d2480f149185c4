"""Decoding Lab: a Streamlit app over the decoding library in core/.

Run with `make run`. Every page draws the shared sidebar (model, device, dtype,
generation settings) through ``components.session.sidebar``.
"""

import streamlit as st

st.set_page_config(page_title="Decoding Lab", page_icon="⚡", layout="wide")

pages = [
    st.Page("pages/autoregressive.py", title="Autoregressive", icon="➡️", default=True),
    st.Page("pages/draft_trees.py", title="Draft trees", icon="🌳"),
    st.Page("pages/pipeline.py", title="SPEED pipeline", icon="⏩"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/benchmark.py", title="Benchmark", icon="📊"),
    st.Page("pages/how_it_works.py", title="How it works", icon="📖"),
]
st.navigation(pages).run()
