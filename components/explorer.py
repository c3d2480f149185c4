"""Interactive explorers (pyvis / vis-network) for a skeleton DAG and for one step's draft tree: drag, zoom,
hover, and click a node for its text, p, q, status, model and timing. They render recorded events, so a
live run and a replayed trace look the same; the live views stay on plotly, which redraws faster.

The page is self-contained (vis-network inlined, no CDN), so it works offline."""

from __future__ import annotations

import json
import re

import streamlit as st
from pyvis.network import Network

from components.tables import percent
from components.tree import COLOURS
from core.trace import Forwarded, NodeStep, SkeletonReady, TreeStep

_CDN = re.compile(r"<link[^>]*cdn\.jsdelivr[^>]*>|<script[^>]*src=\"https://cdn\.jsdelivr[^>]*>\s*</script>", re.S)
_OPTIONS = {
    "layout": {"hierarchical": {"enabled": True, "direction": "LR", "sortMethod": "directed", "levelSeparation": 170}},
    "physics": {"enabled": False},
    "interaction": {"hover": True, "navigationButtons": True, "zoomView": True, "dragNodes": True},
    "edges": {"arrows": {"to": {"enabled": True, "scaleFactor": 0.5}}, "color": "#a1a1aa"},
    "nodes": {"font": {"size": 14}},
}
_CLICK = """
<div id="dl-detail" style="font:13px sans-serif;padding:6px 10px;border-top:1px solid #e4e4e7;white-space:pre-wrap">
Click a node for its details.</div>
<script>
network.on("click", function (params) {
  if (params.nodes.length) {
    document.getElementById("dl-detail").textContent = nodes.get(params.nodes[0]).detail;
  }
});
// opened fitted and centred: whenever the frame gets (or changes) its size, e.g. in a tab shown later
function dlFit() { network.redraw(); network.fit({animation: false}); }
network.once("afterDrawing", dlFit);
new ResizeObserver(dlFit).observe(document.getElementById("mynetwork"));
</script>
"""
WAVE_COLOURS = ["#bfdbfe", "#bbf7d0", "#fde68a", "#fbcfe8", "#ddd6fe", "#fed7aa"]


def _short(text: str, width: int = 14) -> str:
    text = text.replace("\n", "↵")
    return text if len(text) <= width else text[: width - 1] + "…"


def _network(height: int) -> Network:
    net = Network(height=f"{height}px", width="100%", directed=True, cdn_resources="in_line")
    net.set_options(json.dumps(_OPTIONS))
    return net


def _page(net: Network) -> str:
    """The network as one offline HTML page with the click-for-details box under it."""
    return _CDN.sub("", net.generate_html()).replace("</body>", _CLICK + "</body>")


def tree_html(step: TreeStep, height: int = 420) -> str:
    """One step's draft tree: a node per drafted token (BFS order), coloured by status, and the final token."""
    net = _network(height)
    for n, text in enumerate(step.texts):
        status = step.status[n]
        detail = (
            f"token {text!r} (id {step.tokens[n]}), depth {step.depths[n]}, status {status}\n"
            f"p (target, under its parent) = {percent(step.p_token[n])}; q (draft) = {percent(step.q_token[n])}\n"
            f"step {step.step}, rule {step.rule}, committed at {step.t:.3f} s"
        )
        net.add_node(
            n, label=_short(text), title=detail, detail=detail, color=COLOURS[status], level=step.depths[n], shape="box"
        )
        if step.parents[n] >= 0:
            net.add_edge(step.parents[n], n)
    last, final = step.accepted_path[-1], len(step.tokens)
    detail = f"final token {step.final_text!r} ({step.final_kind}), drawn after the accepted path"
    net.add_node(
        final,
        label=_short(step.final_text),
        title=detail,
        detail=detail,
        color=COLOURS[step.final_kind],
        level=step.depths[last] + 1,
        shape="star",
    )
    net.add_edge(last, final)
    return _page(net)


def dag_html(events: list, height: int = 420) -> str | None:
    """The skeleton DAG: a node per point (title), arrows from the points it depends on, levels = waves;
    a click shows the point's text, difficulty, model, wave and when it was decoded. None without a skeleton."""
    ready = next((e for e in events if isinstance(e, SkeletonReady)), None)
    if ready is None:
        return None
    texts, first, last = _point_progress(events, len(ready.titles))
    wave_of = {n: w for w, nodes in enumerate(ready.waves) for n in nodes}
    net = _network(height)
    for n, title in enumerate(ready.titles):
        wave = wave_of.get(n, 0)
        timing = f"decoded from {first[n]:.2f} s to {last[n]:.2f} s" if first[n] is not None else "not decoded"
        depends = ", ".join(str(d + 1) for d in ready.depends[n]) or "none"
        detail = (
            f"point {n + 1}: {title}\ndepends on: {depends}; difficulty {ready.difficulty[n] or '-'}; "
            f"model {ready.models[n]}; wave {wave + 1}; {timing}\n\n{texts[n].strip() or '(no text)'}"
        )
        net.add_node(
            n,
            label=f"{n + 1}. {_short(title, 24)}",
            title=detail[:300],
            detail=detail,
            color=WAVE_COLOURS[wave % len(WAVE_COLOURS)],
            level=wave,
            shape="box",
        )
    sent = {e.node: e for e in events if isinstance(e, Forwarded)}
    for n, deps in enumerate(ready.depends):
        for d in deps:
            carried = dict(zip(sent[n].parents, sent[n].texts, strict=True)).get(d) if n in sent else None
            label = f"forwards to point {n + 1}: {carried}" if carried else "not forwarded (yet)"
            net.add_edge(d, n, title=label[:300])
    return _page(net)


def _point_progress(events: list, points: int) -> tuple[list[str], list[float | None], list[float | None]]:
    """Each point's text and the times of its first and last decoding step."""
    texts, first, last = [""] * points, [None] * points, [None] * points
    for e in events:
        if isinstance(e, NodeStep):
            for node, piece in zip(e.nodes, e.texts, strict=True):
                texts[node] += piece
                first[node] = e.t if first[node] is None else first[node]
                last[node] = e.t
    return texts, first, last


def render_explorer(page: str, *, height: int = 420) -> None:
    """An explorer page in the app (an iframe; its own height plus the details box)."""
    st.iframe(page, height=height + 120)
