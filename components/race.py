"""Race: finished runs (live or recorded) replayed side by side on their own measured clocks.

One shared time axis; each run's committed tokens N(t) and its answer so far grow as its steps commit
(``core.replay``). The replay runs in the browser on the browser's clock (requestAnimationFrame), so
1x is real time whatever the redraw rate: play, pause, 1/4 to 4 times speed, and a time cursor to drag.
A step flashes as it commits; the finished race stays dotted behind the replay.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import streamlit as st

from core.replay import finish_order, race_end, race_lanes

COLOURS = ["#64748b", "#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"]
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
FLASH_S = 0.35  # how long (run time) a committed step stays highlighted

_PAGE = (Path(__file__).parent / "race.html").read_text(encoding="utf-8")


def race_html(runs: dict[str, list]) -> str | None:
    """The race page of the named runs (None when no run committed anything)."""
    lanes = race_lanes(runs)
    if not lanes:
        return None
    data = {
        "end": race_end(lanes),
        "top": max(sum(x.sizes) for x in lanes),
        "flash": FLASH_S,
        "lanes": [
            {
                "name": x.name,
                "colour": COLOURS[i % len(COLOURS)],
                "times": x.times,
                "sizes": x.sizes,
                "pieces": x.pieces,
            }
            for i, x in enumerate(lanes)
        ],
    }
    speeds = "".join(f"<option value='{s}'{' selected' if s == 1.0 else ''}>{s:g}×</option>" for s in SPEEDS)
    page = _PAGE.replace("__SPEEDS__", speeds).replace("__END__", repr(data["end"]))
    return page.replace("__DATA__", json.dumps(data).replace("</", "<\\/"))


def race_summary(runs: dict[str, list]) -> str:
    """Who finished when, as one sentence."""
    order = finish_order(race_lanes(runs))
    return "; ".join(f"{name}: {tokens} tokens by {t:.2f} s" for name, t, tokens in order) + "."


def render_race(runs: dict[str, list], *, key: str) -> None:
    """The race of ``runs`` (name -> events) under a heading, with who finished when."""
    page = race_html(runs)
    if page is None:
        return
    st.subheader("Race: the runs replayed on their own clocks")
    st.caption(
        "Play replays the runs together at real speed (or slower / faster); drag the time cursor to any moment. "
        "A higher line has more of its answer; a flash is a step committing its tokens. Finished: "
        + html.escape(race_summary(runs))
    )
    st.markdown(f"<div class='dl-race' data-key='{html.escape(key)}'></div>", unsafe_allow_html=True)
    st.iframe(page, height=250 + 100 * len(runs))
