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
