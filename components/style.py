"""How the pages look beyond Streamlit's defaults, in one place: key figures and table cells wrap instead of being
cut to "1.…", tables fit their column, and the presentation mode for teaching (large type, no sidebar, one chart
a screen). ``apply`` runs on every page (``components.session.sidebar`` calls it)."""

from __future__ import annotations

import streamlit as st

BASE = """
<style>
/* a key figure is never cut: it wraps (and shrinks a little) instead of ending in an ellipsis */
[data-testid="stMetricValue"] > div, [data-testid="stMetricLabel"] > div, [data-testid="stMetricLabel"] p {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere;
}
[data-testid="stMetricValue"] { font-size: clamp(1.3rem, 2.2vw, 2.2rem) !important; }
/* tables fit their column: headers and cells wrap */
[data-testid="stTable"] table { width: 100%; table-layout: auto; }
[data-testid="stTable"] th, [data-testid="stTable"] td {
  white-space: normal !important; overflow-wrap: anywhere; padding: 0.25rem 0.4rem !important;
}
[data-testid="stTable"] { overflow-x: visible !important; }
</style>
"""

PRESENTATION = """
<style>
/* presentation mode: large type, no sidebar, one chart a screen */
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] { display: none !important; }
.stMainBlockContainer, [data-testid="stMainBlockContainer"] { max-width: 1100px; font-size: 1.35rem; }
.stMainBlockContainer p, .stMainBlockContainer li, .stMainBlockContainer label { font-size: 1.35rem !important; }
.stMainBlockContainer h1 { font-size: 3.2rem !important; }
.stMainBlockContainer h2, .stMainBlockContainer h3 { font-size: 2.2rem !important; }
[data-testid="stMetricValue"] { font-size: 3rem !important; }
.js-plotly-plot, .stPlotlyChart { min-height: 70vh; }
</style>
"""


def presenting() -> bool:
    """Whether the presentation mode is on (``?present=1`` in the address, or the sidebar's switch)."""
    return st.query_params.get("present") == "1" or bool(st.session_state.get("present"))


def apply() -> None:
    st.markdown(BASE, unsafe_allow_html=True)
    if presenting():
        st.markdown(PRESENTATION, unsafe_allow_html=True)
