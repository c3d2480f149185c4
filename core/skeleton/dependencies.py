"""How SGD's skeleton writer decides what point n depends on (docs/methods.md, "Dependencies").

At '| depends on:' after point n's title the writer hands the choice to a ``Decider``:
- ``Literal``: the model's own answer, greedy among ' none' and the earlier numbers (the SGD paper's way), with
  the worked examples in the skeleton prompt (``examples``) or with the instructions alone;
- ``Margin``: per pair (j, n), the margin m_j = log p(' j') - log p(' none') of the two continuations at that
  place; point n depends on every j with m_j > tau (at most MAX_DEPENDENCIES, largest first). tau is tuned on the
  labelled prompts' tuning split (``core.skeleton.calibrate``), which also compares the three.
The chosen decider per model is read from assets/skeleton/dependencies.json (``decider_for``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

MAX_DEPENDENCIES = 3
CALIBRATION = Path(__file__).resolve().parents[2] / "assets" / "skeleton" / "dependencies.json"


class Writing(Protocol):
    """What a decider uses of the skeleton writer (``core.skeleton.writer``)."""

    def force(self, text: str) -> None: ...
    def choose(self, options: list[str | None], write: bool = True) -> int: ...
    def option_logprobs(self, options: list[str]) -> list[float]: ...


class Decider(Protocol):
    name: str
    examples: bool  # whether the skeleton prompt shows the worked examples (core.skeleton.format)

    def write(self, w: Writing, n: int) -> None:
        """Write point n's dependency list (' none' or ' 1, 3') after '| depends on:'."""


@dataclass(frozen=True)
class Literal:
    """The model's literal answer: ' none' or a first earlier number, then ',' and more while it chooses to."""

    examples: bool = True

    @property
    def name(self) -> str:
        return "literal" if self.examples else "instructions"

    def write(self, w: Writing, n: int) -> None:
        left = list(range(1, n))
        if not left:
            w.force(" none")
            return
        first = w.choose([" none"] + [f" {j}" for j in left])  # writes the choice
        if first == 0:
            return
        left.pop(first - 1)
        for _ in range(MAX_DEPENDENCIES - 1):
            if not left or w.choose([",", " |"], write=False) == 1:
                return
            w.force(",")
            left.pop(w.choose([f" {j}" for j in left]))


@dataclass(frozen=True)
class Margin:
    """Every earlier point j with log p(' j') - log p(' none') > tau, largest margins first."""

    tau: float
    examples: bool = True
    name: str = "margin"

    def write(self, w: Writing, n: int) -> None:
        chosen = self.choose(pair_margins(w, n)) if n > 1 else []
        w.force(" " + ", ".join(map(str, chosen)) if chosen else " none")

    def choose(self, margins: dict[int, float]) -> list[int]:
        """The points above the threshold, at most MAX_DEPENDENCIES (the largest margins), in order."""
        picked = sorted((j for j, m in margins.items() if m > self.tau), key=lambda j: -margins[j])
        return sorted(picked[:MAX_DEPENDENCIES])


def pair_margins(w: Writing, n: int) -> dict[int, float]:
    """m_j = log p(' j') - log p(' none') for each earlier point j = 1..n-1, at '| depends on:'."""
    logp = w.option_logprobs([" none"] + [f" {j}" for j in range(1, n)])
    return {j: logp[j] - logp[0] for j in range(1, n)}


def sequence_logprobs(logits_after, options: list[list[int]]) -> list[float]:
    """log p of each token sequence, walking their shared prefixes: ``logits_after(prefix)`` gives the next-token
    logits [V] after the written text plus ``prefix`` (one forward per distinct prefix)."""
    cache: dict[tuple[int, ...], torch.Tensor] = {}
    out = []
    for seq in options:
        total = 0.0
        for i, tok in enumerate(seq):
            prefix = tuple(seq[:i])
            if prefix not in cache:
                cache[prefix] = torch.log_softmax(logits_after(list(prefix)).float(), -1)
            total += float(cache[prefix][tok])
        out.append(total)
    return out


DEFAULT = Literal(examples=True)


def decider_for(model_key: str, path: Path = CALIBRATION) -> Decider:
    """The decider the calibration chose for this model; the literal answer with examples for a model never
    calibrated (or a calibration file that cannot be read)."""
    try:
        chosen = json.loads(path.read_text())[model_key]["chosen"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT
    return from_record(chosen)


def from_record(record: dict) -> Decider:
    """A decider from its JSON record {"name": ..., "tau": ...}."""
    name = record.get("name")
    if name == "margin":
        return Margin(float(record["tau"]))
    return Literal(examples=name != "instructions")
