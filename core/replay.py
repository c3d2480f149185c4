"""A race of finished runs on their own measured clocks: what each run had committed at any time t.

Every run's ``StepCommitted`` events carry ``t``, the seconds since that run started, measured while it
ran (live or recorded). Replaying several runs on one time axis from these clocks shows where one
method pulls ahead of another: at time t, run r has committed N_r(t) = sum of the tokens of its steps
with t_step <= t, and its answer so far is the text of those steps.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from core.metrics import summarize
from core.trace import StepCommitted


@dataclass(frozen=True)
class Lane:
    """One run's commits: step times (seconds since its start), tokens per step, and each step's text."""

    name: str
    times: list[float]
    sizes: list[int]
    pieces: list[str]
    wall_s: float

    def committed(self, t: float) -> int:
        """How many steps had committed by time t."""
        return bisect_right(self.times, t)

    def tokens_at(self, t: float) -> int:
        return sum(self.sizes[: self.committed(t)])

    def text_at(self, t: float) -> str:
        return "".join(self.pieces[: self.committed(t)])


def lane(name: str, events: list) -> Lane:
    """The race lane of one finished run (its committed steps, in order)."""
    steps = [e for e in events if isinstance(e, StepCommitted)]
    pieces = ["".join(s.texts) for s in steps]
    return Lane(name, [s.t for s in steps], [len(s.token_ids) for s in steps], pieces, summarize(events).wall_s)


def race_lanes(runs: dict[str, list]) -> list[Lane]:
    """One lane per named run that committed anything."""
    lanes = [lane(name, events) for name, events in runs.items()]
    return [x for x in lanes if x.times]


def race_end(lanes: list[Lane]) -> float:
    """When the slowest run ended (its wall time, or its last commit if later)."""
    return max((max(x.wall_s, x.times[-1]) for x in lanes), default=0.0)


def finish_order(lanes: list[Lane]) -> list[tuple[str, float, int]]:
    """(name, time of its last commit, tokens) for every lane, first finisher first."""
    return sorted(((x.name, x.times[-1], sum(x.sizes)) for x in lanes), key=lambda r: r[1])
