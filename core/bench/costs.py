"""What a drafting method's steps cost in AR steps (draft and verify per step and per draft forward), and its
cost model against the measured figures (``core.cost_model``), for the bench's totals and its printout."""

from __future__ import annotations

from core.cost_model import explain_inputs, pool_inputs

def cost_model(runs: list[dict], rec: dict, unit: float, curve: dict | None) -> dict | None:
    """The cost model (core.cost_model) of a drafting method over all its prompts, in AR steps of this bench
    (``unit`` seconds: the decode clock): predicted tokens per step and speedup beside the measured ones
    (``decode_speedup_vs_ar``), and the break-even figures."""
    explained = explain_inputs(
        pool_inputs([r.get("cost_inputs", {}) for r in runs]),
        rec["acceptance_per_depth"] or [],
        rec["tokens"],
        unit,
        curve,
        rec["decode_speedup_vs_ar"],
    )
    return explained.as_dict() if explained else None

def relative_costs(runs: list[dict], ar_token_s: float) -> dict:
    """Draft cost per draft forward (draft_seconds / draft_forwards) and per step, and verify cost per step, in
    units of one AR step of this run (``ar``'s seconds per token): the D and v(n) of the cost model
    (docs/methods.md). Draft and verify seconds are the device's (``core.engine.sync.Stopwatch``). Empty for
    non-drafting methods."""
    extras = [r["extras"] for r in runs if "draft_seconds" in r["extras"]]
    forwards = sum(e.get("draft_forwards", 0) for e in extras)
    steps = sum(r["forwards"] for r in runs if "draft_seconds" in r["extras"])
    if not extras or not steps:
        return {}
    draft_s, verify_s = sum(e["draft_seconds"] for e in extras), sum(e["verify_seconds"] for e in extras)
    return {
        "draft_cost_per_forward": draft_s / forwards / ar_token_s if forwards else None,
        "draft_cost_per_step": draft_s / steps / ar_token_s,
        "verify_cost_per_step": verify_s / steps / ar_token_s,
    }

def describe_cost_model(cm: dict) -> str:
    def num(x) -> str:
        return "none" if x is None else f"{x:.3f}"

    return (
        f"cost model: tokens per step {cm['predicted_tokens_per_step']:.2f} predicted / "
        f"{cm['measured_tokens_per_step']:.2f} measured; speedup {cm['predicted_speedup']:.2f}x predicted / "
        f"{num(cm['measured_speedup'])}x measured; {cm['cost_label']} {cm['cost']:.3f}; break-even acceptance "
        f"{num(cm['break_even_acceptance'])}, break-even cost {num(cm['break_even_cost'])}"
    )
