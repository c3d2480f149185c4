"""Tables as a reader sees them: readable column names, numbers rounded, no "None" (a dash instead)."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

LABELS = {  # the bench JSON's field names, as column titles and axis labels
    "prompts": "prompts",
    "tokens": "tokens",
    "tok_s": "tokens/s",
    "wall_s": "wall-clock s",
    "speedup_vs_ar": "speedup vs AR",
    "wall_speedup_vs_ar": "wall-clock speedup vs AR",
    "equal_length_speedup_vs_ar": "speedup vs AR (equal length)",
    "mean_accepted": "mean accepted length",
    "acceptance_rate": "acceptance rate",
    "identical_to_ar": "identical to AR",
    "ttft_s": "first token s",
    "proxy_loglik": "log-likelihood proxy (nats/token)",
    "proxy_overlap_with_ar": "overlap with AR",
    "proxy_repetition": "repeated 4-grams",
    "method": "method",
    "id": "prompt",
    "category": "category",
}


def cell(value, digits: int = 2) -> str:
    """One value as text: a dash for a missing one, yes / no for a truth value, numbers rounded; never in
    scientific notation (a figure too small for the digits reads "< 0.01"), an infinite one "none needed"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "none needed" if value > 0 else "–"
        if value != 0 and abs(value) < 10**-digits:
            return f"< {10**-digits:.{digits}f}" if value > 0 else f"> -{10**-digits:.{digits}f}"
        return f"{value:.{digits}f}"
    return str(value)


def percent(p: float) -> str:
    """A probability as people read one: "43%", "4.3%", "0.43%", "< 0.01%" (never 4.34e-19); a negative value
    marks one that was not computed."""
    if p < 0:
        return "not computed"
    if p >= 0.1:
        return f"{p:.0%}"
    if p >= 0.01:
        return f"{p:.1%}"
    if p >= 0.0001:
        return f"{p:.2%}"
    return "< 0.01%" if p > 0 else "0%"


def readable(frame: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The frame with LABELS for column names and every value as text (``cell``). Build frames with
    ``dtype=object`` so that a count column with a missing value stays whole numbers."""
    shown = frame.rename(columns=LABELS).astype(object)
    return shown.apply(lambda col: col.map(lambda v: cell(v, digits)))


def render_table(frame: pd.DataFrame | list[dict], *, key: str, digits: int = 2) -> None:
    """A static table that fits its column (headers and cells wrap: ``components.style``), values as ``cell``
    writes them. ``key`` names it in the page (a data attribute the browser tests find it by)."""
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame, dtype=object)
    st.markdown(f"<div class='dl-table' data-key='{key}'></div>", unsafe_allow_html=True)
    st.table(readable(frame, digits), hide_index=True)
