"""Decoding Lab core: a decoding library with no UI imports (no streamlit, plotly, pyvis)."""
