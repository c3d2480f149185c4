"""What ``python -m core.bench`` prints (to stderr) once the result is written."""

from __future__ import annotations

import sys

from core.bench.costs import describe_cost_model


def print_result(result: dict) -> None:
    """Per method its totals on one line (to stderr), its cost model and exact acceptance; the verify-cost
    curve; per skeleton run its waves, edges and forwarded tokens; every failed run."""
    for name, rec in result["methods"].items():
        fields = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in rec.items()
            if k not in ("acceptance_per_depth", "expected_acceptance", "cost_model", "difficulty_to_member")
        )
        if rec["acceptance_per_depth"]:
            fields += ", acceptance_per_depth=[" + ", ".join(f"{x:.2f}" for x in rec["acceptance_per_depth"]) + "]"
        print(f"{name}: {fields}", file=sys.stderr)
        if rec.get("cost_model"):
            print(f"  {describe_cost_model(rec['cost_model'])}", file=sys.stderr)
        for rule, fig in (rec.get("expected_acceptance") or {}).items():
            depths = ", ".join("-" if x is None else f"{x:.3f}" for x in fig["by_depth"])
            print(f"  exact acceptance if verified by {rule}: {fig['mean']:.3f} (by depth: {depths})", file=sys.stderr)
    if "verify_curve" in result:
        curve = dict(zip(result["verify_curve"]["n"], result["verify_curve"]["relative"], strict=True))
        shown = ", ".join(f"v({n})={curve[n]:.2f}" for n in (1, 2, 4, 8, 16, 32, 64) if n in curve)
        print(f"verify cost: {shown}", file=sys.stderr)
    for r in result["runs"]:
        if "waves" in r.get("extras", {}) and r["method"] != "sot":
            x = r["extras"]
            print(
                f"  {r['method']} on {r['id']}: {x['waves']} waves, {x.get('edges', 0)} edges, "
                f"{x.get('forwarded_tokens', 0)} tokens forwarded, difficulty {x.get('difficulty')} -> "
                f"{x.get('members')}",
                file=sys.stderr,
            )
        if "failed" in r:
            print(f"failed: {r['method']} on {r['id']}: {r['failed']}", file=sys.stderr)
