"""Bench results (the JSON of core.bench) as tables and plotly charts."""

from __future__ import annotations

import csv
import io

import pandas as pd
import plotly.express as px
import streamlit as st

from components.tables import LABELS, render_table
from core.metrics import ratio

SUMMARY_COLUMNS = [
    "prompts",
    "tokens",
    "tok_s",
    "speedup_vs_ar",
    "wall_speedup_vs_ar",
    "mean_accepted",
    "acceptance_rate",
    "identical_to_ar",
    "ttft_s",
    "proxy_loglik",
    "proxy_overlap_with_ar",
    "proxy_repetition",
]


def summary_frame(result: dict) -> pd.DataFrame:
    """One row per method; a column no method has a figure for (e.g. proxies without sot/sgd) is left out."""
    rows = [{"method": name, **{k: rec.get(k) for k in SUMMARY_COLUMNS}} for name, rec in result["methods"].items()]
    return pd.DataFrame(rows, dtype=object).dropna(axis=1, how="all")


def runs_frame(result: dict) -> pd.DataFrame:
    runs = pd.DataFrame(
        [
            {
                k: r[k]
                for k in ("method", "id", "category", "tokens", "wall_s", "tok_s", "mean_accepted", "acceptance_rate")
            }
            for r in result["runs"]
            if "failed" not in r
        ]
    )
    ar = runs[runs["method"] == "ar"].set_index("id")["tok_s"]
    runs["speedup_vs_ar"] = runs.apply(lambda r: ratio(r["tok_s"], ar.get(r["id"], 0.0)), axis=1)
    return runs


def runs_csv(result: dict) -> str:
    buf = io.StringIO()
    runs_frame(result).to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue()


def render_bench(result: dict, *, key: str) -> None:
    render_table(summary_frame(result), key=f"{key}-summary")
    runs = runs_frame(result)
    a, b = st.columns(2)
    a.plotly_chart(
        px.bar(
            summary_frame(result).astype({"tok_s": float}),
            x="method",
            y="tok_s",
            title="tokens/s per method",
            height=320,
            labels=LABELS,
        ),
        key=f"{key}-toks",
        width="stretch",
    )
    if runs["speedup_vs_ar"].notna().any():
        b.plotly_chart(
            px.box(
                runs[runs["method"] != "ar"],
                x="method",
                y="speedup_vs_ar",
                points="all",
                title="speedup vs AR over prompts",
                labels=LABELS,
                height=320,
            ),
            key=f"{key}-speedups",
            width="stretch",
        )
    accepted = runs.dropna(subset=["mean_accepted"])
    if not accepted.empty:
        per_cat = accepted.groupby(["method", "category"], as_index=False)["mean_accepted"].mean()
        st.plotly_chart(
            px.bar(
                per_cat,
                x="category",
                y="mean_accepted",
                color="method",
                barmode="group",
                title="mean accepted length per category",
                labels=LABELS,
                height=340,
            ),
            key=f"{key}-categories",
            width="stretch",
        )
