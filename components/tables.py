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
    """One value as text: a dash for a missing one, yes / no for a truth value, numbers rounded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.2e}"
    return str(value)


def readable(frame: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The frame with LABELS for column names and every value as text (``cell``). Build frames with
    ``dtype=object`` so that a count column with a missing value stays whole numbers."""
    shown = frame.rename(columns=LABELS).astype(object)
    return shown.apply(lambda col: col.map(lambda v: cell(v, digits)))


def render_table(frame: pd.DataFrame | list[dict], *, key: str, digits: int = 2) -> None:
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame, dtype=object)
    st.dataframe(readable(frame, digits), hide_index=True, key=key)
