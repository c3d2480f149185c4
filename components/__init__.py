"""Renderers of trace events (plotly, streamlit). No torch here: a live run and a
recorded trace render through the same functions."""
