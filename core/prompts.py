"""Prompt suites: JSONL files, one ``{"id", "prompt", "category"}`` object per line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "assets" / "prompts" / "suite.jsonl"


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    category: str


def parse_prompts(text: str, source: str = "prompts") -> list[Prompt]:
    """Parse JSONL text; ValueError naming the line for anything malformed."""
    prompts, seen = [], set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}, line {n}: not JSON ({exc.msg}).") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{source}, line {n}: needs a non-empty string field 'prompt'.")
        pid = str(row.get("id", n))
        if pid in seen:
            raise ValueError(f"{source}, line {n}: the id {pid!r} is used twice.")
        seen.add(pid)
        prompts.append(Prompt(id=pid, prompt=row["prompt"], category=str(row.get("category", "uncategorised"))))
    if not prompts:
        raise ValueError(f"{source} holds no prompts.")
    return prompts


SPLITS = ("all", "train", "held-out")


def is_held_out(index: int) -> bool:
    """Every fifth suite prompt is held out from head training and n-gram counts (index 4, 9, ...)."""
    return index % 5 == 4


def split_prompts(prompts: list[Prompt], split: str) -> list[Prompt]:
    """``all``, or the suite's ``train`` / ``held-out`` part (by position, ``is_held_out``)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use {', '.join(SPLITS)}.")
    if split == "all":
        return list(prompts)
    return [p for i, p in enumerate(prompts) if is_held_out(i) == (split == "held-out")]


def load_prompts(path: str | Path = SUITE) -> list[Prompt]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The prompt file '{path}' does not exist.")
    return parse_prompts(path.read_text(encoding="utf-8"), source=str(path))


GRAPH = SUITE.parent / "graph.jsonl"
GRAPH_SPLITS = ("tune", "test")


@dataclass(frozen=True)
class GraphPrompt:
    """A labelled multi-part prompt (assets/prompts/graph.jsonl): its parts in order and the edges (j, i), part i
    building on part j (j < i); ``kind`` "dependent" (at least one edge) or "independent" (none)."""

    id: str
    split: str  # "tune" (dependency deciders are tuned on it) or "test" (only measured)
    kind: str
    prompt: str
    parts: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]


def load_graph_prompts(split: str = "all", path: str | Path = GRAPH) -> list[GraphPrompt]:
    """The labelled prompts of ``split`` (tune, test or all); ValueError naming the line for a bad label."""
    if split not in ("all", *GRAPH_SPLITS):
        raise ValueError(f"Unknown split {split!r}; use all, {', '.join(GRAPH_SPLITS)}.")
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        parts, edges = tuple(row["parts"]), tuple((int(j), int(i)) for j, i in row["edges"])
        if row["split"] not in GRAPH_SPLITS or row["kind"] != ("dependent" if edges else "independent"):
            raise ValueError(f"{path}, line {n}: split must be tune or test and kind match the edges.")
        if any(not 0 <= j < i < len(parts) for j, i in edges):
            raise ValueError(f"{path}, line {n}: an edge (j, i) needs 0 <= j < i < {len(parts)}.")
        out.append(GraphPrompt(row["id"], row["split"], row["kind"], row["prompt"], parts, edges))
    return [p for p in out if split in ("all", p.split)]
