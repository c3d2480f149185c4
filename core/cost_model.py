"""Why a lossless method is or is not faster than AR, from a run's own measurements (docs/methods.md,
"Cost model").

Costs are in units of one AR step u (seconds per token of the AR run beside it; without one, a
1-token forward of the measured v(n) curve). A family's model gives

    E(a)  expected tokens committed per step, from acceptance a_1..a_L per depth
    C(c)  cost of one step, from the family's cost knob c
    S     = E(a) / C(c), the predicted speedup vs AR

Draft trees (speculative, EAGLE, BPD): E = 1 + sum_d prod_{i<=d} a_i and C = v(n) + c m, with n the mean
number of tokens verified per forward, v(n) from the device curve, c the cost of one draft forward
(tree level) and m the draft forwards per step. SPEED: a hit (rate h) commits the next token one tick
later, a miss after S ticks, so E = 1 / (h + (1 - h) S) tokens per tick and C = the tick's cost.

Both are set against the measured speedup; ``break_even_*`` answer "what acceptance, or what cost,
would make this method exactly as fast as AR here".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from core.engine.cost import relative_cost
from core.metrics import RunMetrics, acceptance_per_depth, decode_speedup, summarize
from core.trace import PipelineTick, TreeStep


class CostModel(Protocol):
    acceptance: list[float]  # measured a_d per depth (SPEED: [hit rate])
    cost: float  # measured cost knob (draft cost per draft forward, or tick cost), in AR steps
    cost_label: str
    step_label: str
    formula: str  # the model in words, for the pages

    def tokens_per_step(self, acceptance: list[float]) -> float: ...

    def step_cost(self, cost: float) -> float: ...

    def figures(self) -> dict: ...


@dataclass
class TreeCost:
    """S = (1 + sum_d prod_{i<=d} a_i) / (v(n) + c m)."""

    acceptance: list[float]
    cost: float  # c
    draft_forwards: float  # m
    nodes: float  # n
    verify: float  # v(n)
    cost_label: str = "draft cost per draft forward (AR steps)"
    step_label: str = "step"
    formula: str = (
        "Per step the target verifies n tokens for v(n) AR steps and the draft spends c per draft forward, m "
        "times; depth d is accepted with probability a_d once depth d - 1 was. Tokens per step "
        "E = 1 + Σ_d Π_{i≤d} a_i, and the predicted speedup is S = E / (v(n) + c·m)."
    )

    def tokens_per_step(self, acceptance: list[float]) -> float:
        total, reach = 1.0, 1.0
        for a in acceptance:
            reach *= a
            total += reach
        return total

    def step_cost(self, cost: float) -> float:
        return self.verify + cost * self.draft_forwards

    def figures(self) -> dict:
        return {"nodes": self.nodes, "verify_cost": self.verify, "draft_forwards": self.draft_forwards}


@dataclass
class PipelineCost:
    """S = 1 / ((h + (1 - h) S) * tick cost): a miss refills the S-stage pipe."""

    acceptance: list[float]  # [h]
    cost: float  # tick cost
    stages: int
    cost_label: str = "cost of one tick (AR steps)"
    step_label: str = "tick"
    formula: str = (
        "Each tick moves every token in flight one stage; a hit (rate h) commits the next token one tick later, "
        "a miss refills the pipe of S stages. Tokens per tick E = 1 / (h + (1 - h)·S); the predicted speedup is "
        "S = E / (cost of a tick in AR steps)."
    )

    def tokens_per_step(self, acceptance: list[float]) -> float:
        h = acceptance[0] if acceptance else 0.0
        return 1.0 / (h + (1.0 - h) * self.stages)

    def step_cost(self, cost: float) -> float:
        return cost

    def figures(self) -> dict:
        return {"stages": self.stages}


def predicted_speedup(model: CostModel, acceptance: list[float] | None = None, cost: float | None = None) -> float:
    """S = E(a) / C(c) at the measured figures, or at the ones given."""
    a = model.acceptance if acceptance is None else acceptance
    c = model.cost if cost is None else cost
    spent = model.step_cost(c)
    return model.tokens_per_step(a) / spent if spent > 0 else 0.0


def uniform(model: CostModel, a: float) -> list[float]:
    """The same acceptance a at every depth the run drafted."""
    return [a] * max(len(model.acceptance), 1)


def equivalent_uniform(model: CostModel) -> float:
    """The a that, at every depth, gives the measured tokens per step (the sliders' starting point)."""
    return _solve(lambda a: model.tokens_per_step(uniform(model, a)), model.tokens_per_step(model.acceptance), 0.0, 1.0)


def break_even_acceptance(model: CostModel, cost: float | None = None) -> float | None:
    """The uniform acceptance at which S = 1 (None: even a = 1 loses to AR)."""
    spent = model.step_cost(model.cost if cost is None else cost)
    if model.tokens_per_step(uniform(model, 1.0)) < spent:
        return None
    return _solve(lambda a: model.tokens_per_step(uniform(model, a)), spent, 0.0, 1.0)


def break_even_cost(model: CostModel, acceptance: list[float] | None = None) -> float | None:
    """The cost knob at which S = 1 (None: even at zero cost the method loses to AR)."""
    gain = model.tokens_per_step(model.acceptance if acceptance is None else acceptance)
    if model.step_cost(0.0) >= gain:
        return None
    high = 1.0
    while model.step_cost(high) < gain:
        high *= 2
    return _solve(model.step_cost, gain, 0.0, high)


def _solve(f, target: float, low: float, high: float, rounds: int = 60) -> float:
    """x in [low, high] with f(x) = target, f non-decreasing (bisection; the nearest end if outside)."""
    for _ in range(rounds):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return (low + high) / 2


@dataclass
class Explained:
    """A cost model with the measured figures it is set against."""

    model: TreeCost | PipelineCost
    unit_s: float  # seconds of one AR step
    measured_tokens_per_step: float
    measured_speedup: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> float:
        return predicted_speedup(self.model)

    def as_dict(self) -> dict:
        """The figures for the bench JSON."""
        m = self.model
        return {
            "acceptance_per_depth": m.acceptance,
            "cost": m.cost,
            "cost_label": m.cost_label,
            **m.figures(),
            "unit_s": self.unit_s,
            "predicted_tokens_per_step": m.tokens_per_step(m.acceptance),
            "measured_tokens_per_step": self.measured_tokens_per_step,
            "predicted_speedup": self.predicted,
            "measured_speedup": self.measured_speedup,
            "break_even_acceptance": break_even_acceptance(m),
            "break_even_cost": break_even_cost(m),
        }


def cost_inputs(events: list) -> dict:
    """What a run's steps spent, as plain sums that add up over runs (the bench pools them): draft-tree steps,
    nodes verified, draft forwards and seconds; SPEED ticks, their seconds, guesses tested and hits. Empty for
    a method that drafts nothing."""
    extras = summarize(events).extras
    trees = [e for e in events if isinstance(e, TreeStep)]
    ticks = [e for e in events if isinstance(e, PipelineTick)]
    if trees and "draft_seconds" in extras:
        return {
            "kind": "tree",
            "steps": len(trees),
            "nodes": sum(len(t.tokens) for t in trees),
            "draft_forwards": extras["draft_forwards"],
            "draft_seconds": extras["draft_seconds"],
            "verify_seconds": extras["verify_seconds"],
        }
    if ticks:
        verdicts = [t.hit for t in ticks if t.hit is not None]
        return {
            "kind": "pipeline",
            "steps": len(ticks),
            "tick_seconds": sum(t.end - t.start for t in ticks),
            "verdicts": len(verdicts),
            "hits": sum(verdicts),
            "stages": int(extras.get("stages", 2)),
        }
    return {}


def pool_inputs(inputs: list[dict]) -> dict:
    """The sums of several runs' ``cost_inputs`` (of one method)."""
    inputs = [x for x in inputs if x]
    if not inputs:
        return {}
    pooled = dict(inputs[0])
    for x in inputs[1:]:
        for k, v in x.items():
            if k not in ("kind", "stages"):
                pooled[k] += v
    return pooled


def explain(events: list, curve: dict | None, ar: list | None) -> Explained | None:
    """The cost model of a finished drafting run (trees or SPEED), or None for a method that drafts nothing.

    ``curve``: the device's v(n) (``core.engine.cost``); ``ar``: the AR run beside it, which sets the unit (its
    seconds per token on the decode clock) and the measured speedup (``decode_speedup``: the figure the page
    shows beside it)."""
    m = summarize(events)
    ar_m = summarize(ar) if ar else None
    unit = ar_unit(ar_m) if ar_m else (curve["seconds"][0] if curve else None)
    measured = decode_speedup(m, ar_m) if ar_m else None
    return explain_inputs(cost_inputs(events), acceptance_per_depth(events), m.tokens, unit, curve, measured)


def ar_unit(ar: RunMetrics) -> float | None:
    """One AR step in seconds: AR's seconds per token on the decode clock (wall clock for a one-step run)."""
    if ar.decode_tok_s:
        return 1.0 / ar.decode_tok_s
    return ar.wall_s / ar.tokens if ar.tokens else None


def explain_inputs(
    inputs: dict, acceptance: list[float], tokens: int, unit: float | None, curve: dict | None, measured: float | None
) -> Explained | None:
    """The cost model from (pooled) ``cost_inputs``, with ``unit`` the seconds of one AR step."""
    if not inputs or not unit:
        return None
    if inputs["kind"] == "tree":
        costs = RunCosts(*(inputs[k] for k in ("steps", "nodes", "draft_forwards", "draft_seconds", "verify_seconds")))
        return tree_cost(acceptance, costs, tokens, unit, curve, measured)
    x = inputs
    return pipeline_cost(x["hits"], x["verdicts"], x["tick_seconds"], x["steps"], x["stages"], tokens, unit, measured)


@dataclass
class RunCosts:
    """What draft-tree steps spent, summed over a run (or a bench's runs)."""

    steps: int
    nodes: int  # tokens verified, over all steps
    draft_forwards: int  # forwards of the draft (a draft model's, a head's, EAGLE's layer; 0 for a copy)
    draft_seconds: float
    verify_seconds: float


def tree_cost(
    acceptance: list[float], costs: RunCosts, tokens: int, unit: float, curve: dict | None, measured: float | None
) -> Explained:
    """The TreeCost of draft-tree runs: v(n) from the device curve at the mean tree size (the run's own verify
    time when no curve is measured), c = draft seconds per draft forward, both in AR steps of ``unit`` s."""
    steps = max(costs.steps, 1)
    nodes, measured_verify = costs.nodes / steps, costs.verify_seconds / steps / unit
    notes = []
    if curve is not None:
        verify = relative_cost(curve, nodes)
    else:
        verify = max(measured_verify, 1.0)  # n tokens cannot cost less than one: below 1 is timing noise
        notes.append("v(n) is not measured on this device yet, so the run's own verify time stands in for it.")
    model = TreeCost(
        acceptance=acceptance,
        cost=costs.draft_seconds / costs.draft_forwards / unit if costs.draft_forwards else 0.0,
        draft_forwards=costs.draft_forwards / steps,
        nodes=nodes,
        verify=verify,
    )
    drafted = costs.draft_seconds / steps / unit
    note = f"Measured per step: verify {measured_verify:.2f} and draft {drafted:.2f} AR steps"
    if measured:
        whole = tokens / steps / measured  # the step's whole cost, from the measured speedup
        note += f", {whole:.2f} in all; the other {whole - measured_verify - drafted:.2f} (the walk, the cache update,"
        note += " bookkeeping) is what the model leaves out"
    notes.append(note + ".")
    return Explained(model, unit, tokens / steps, measured, notes)


def pipeline_cost(
    hits: int, verdicts: int, tick_seconds: float, ticks: int, stages: int, tokens: int, unit: float, measured
) -> Explained:
    """The PipelineCost of SPEED runs: hit rate h over the ticks that tested a guess, tick cost in AR steps."""
    model = PipelineCost(
        acceptance=[hits / verdicts if verdicts else 0.0], cost=tick_seconds / max(ticks, 1) / unit, stages=stages
    )
    notes = ["The stages of a tick run one after another here, so a tick costs about one full forward."]
    return Explained(model, unit, tokens / max(ticks, 1), measured, notes)


def with_figures(model: TreeCost | PipelineCost, acceptance: float | None, cost: float | None):
    """The model with a uniform acceptance and / or another cost (the panel's sliders)."""
    changed = model if cost is None else replace(model, cost=cost)
    return changed if acceptance is None else replace(changed, acceptance=uniform(model, acceptance))
