"""The bench's per-method totals from its runs (``summarize_runs``): speeds on the wall and decode clocks,
speedups against AR, acceptance, identity with AR, quality proxies, host reads, exact acceptance, skeleton
totals, and for drafting methods their costs and cost model (``core.bench.costs``)."""

from __future__ import annotations

from core.bench.costs import cost_model, relative_costs
from core.metrics import rates, ratio, time_to
from core.served import SERVED, baseline
from core.trace import StepCommitted

def summarize_runs(runs: list[dict], methods: list[str], curve: dict | None = None) -> dict:
    """Per-method totals: prompts, tokens, wall_s, tok_s (tokens / wall), decode_tok_s (the decode clock:
    tokens after each run's first step over the seconds after it, ``core.metrics``), speedup_vs_ar (tok_s
    ratio), decode_speedup_vs_ar (decode_tok_s ratio: the figure the app's pages show),
    wall_speedup_vs_ar (AR's total wall-clock / this method's, same prompts: for methods whose answers
    differ from AR's, e.g. sot and sgd, the time to a whole answer),
    mean_accepted (tokens per target forward, null for non-drafting methods),
    acceptance_rate, identical_to_ar (prompts whose ids equal ar's; null without ar), proxy_loglik,
    proxy_overlap_with_ar and proxy_repetition (quality proxies, means over prompts; null for lossless methods, see
    ``add_quality_proxies``); for drafting methods ``cost_model`` (``core.cost_model``; ``curve``: the
    device's v(n), else each step's measured verify time stands in)."""
    failed = [r for r in runs if "failed" in r]
    runs = [r for r in runs if "failed" not in r]
    ar_ids = {r["id"]: r["output_ids"] for r in runs if r["method"] == "ar"}
    out = {}
    for name in methods:
        mine = [r for r in runs if r["method"] == name]
        tokens = sum(r["tokens"] for r in mine)
        wall = sum(r["wall_s"] for r in mine)
        accepted = [r for r in mine if r["mean_accepted"] is not None]
        rates = [r for r in mine if r["acceptance_rate"] is not None]
        forwards = sum(r["forwards"] for r in accepted)
        out[name] = {
            "prompts": len(mine),
            "tokens": tokens,
            "wall_s": wall,
            "tok_s": tokens / wall if wall else 0.0,
            "decode_tok_s": _decode_tok_s(mine),
            "speedup_vs_ar": None,
            "decode_speedup_vs_ar": None,
            "wall_speedup_vs_ar": None,
            "ttft_s": sum(r["ttft_s"] or 0 for r in mine) / len(mine) if mine else None,
            "mean_accepted": sum(r["tokens"] for r in accepted) / forwards if forwards else None,
            "acceptance_rate": sum(r["acceptance_rate"] for r in rates) / len(rates) if rates else None,
            "identical_to_ar": (
                sum(ar_ids.get(r["id"]) == r["output_ids"] for r in mine)
                if ar_ids and not name.endswith(SERVED)  # a served run sees no token ids
                else None
            ),
            "acceptance_per_depth": _pooled_depth_rates(mine),
            "proxy_loglik": _mean_of(mine, "proxy_loglik"),
            "proxy_overlap_with_ar": _mean_of(mine, "proxy_overlap_with_ar"),
            "proxy_repetition": _mean_of(mine, "proxy_repetition"),
            "failed": sum(r["method"] == name for r in failed),
            "host_reads_per_step": _reads_per_step(mine),
            "expected_acceptance": _pooled_expected(mine),
            **_mean_extras(mine),
            **_skeleton_totals(mine),
        }
    for name, rec in out.items():
        ar = out.get(baseline(name))
        if not ar or not ar["tok_s"]:
            continue
        mine = [r for r in runs if r["method"] == name]
        rec["speedup_vs_ar"] = ratio(rec["tok_s"], ar["tok_s"])
        rec["decode_speedup_vs_ar"] = ratio(rec["decode_tok_s"], ar["decode_tok_s"])
        rec["wall_speedup_vs_ar"] = ratio(ar["wall_s"], rec["wall_s"])
        rec["equal_length_speedup_vs_ar"] = _equal_length(mine, [r for r in runs if r["method"] == baseline(name)])
        unit = 1.0 / (ar["decode_tok_s"] or ar["tok_s"])  # one AR step on the decode clock
        rec.update(relative_costs(mine, unit))
        rec["cost_model"] = cost_model(mine, rec, unit, curve)
    return out

def first_step(events: list) -> list[int]:
    """The token ids of a run's first step (the prefill's step, off the decode clock)."""
    return next((e.token_ids for e in events if isinstance(e, StepCommitted)), [])

def _decode_tok_s(runs: list[dict]) -> float | None:
    """Tokens after each run's first step over the seconds after it, pooled (the decode clock, ``core.metrics``)."""
    timed = [r for r in runs if r.get("decode_s")]
    seconds = sum(r["decode_s"] for r in timed)
    return sum(r["decode_tokens"] for r in timed) / seconds if seconds else None

def _equal_length(mine: list[dict], ar_runs: list[dict]) -> float | None:
    """Time to complete answers of equal length: over the prompts, AR's time to as many tokens as this method's
    answer holds (core.metrics.time_to; extrapolated past AR's own answer) over this method's wall time."""
    ar = {r["id"]: r for r in ar_runs if "token_times" in r}
    pairs = [(r, ar[r["id"]]) for r in mine if r["id"] in ar]
    if not pairs:
        return None
    ar_s = sum(time_to(a["token_times"], a["wall_s"], len(r["output_ids"]))[0] for r, a in pairs)
    return ratio(ar_s, sum(r["wall_s"] for r, _ in pairs))

def _reads_per_step(runs: list[dict]) -> float | None:
    """Host reads of device tensors per step (a token for ar, a draft-and-verify step, a SPEED tick with a
    token): ``host_reads`` from each run's extras over its steps (``core.engine.sync``)."""
    steps = sum(r.get("steps", 0) for r in runs if "host_reads" in r["extras"])
    return sum(r["extras"]["host_reads"] for r in runs if "host_reads" in r["extras"]) / steps if steps else None

def _pooled_expected(runs: list[dict]) -> dict | None:
    """Each rule's exact acceptance (``core.speculative.expected``) pooled over the runs' verified nodes:
    {rule: {"mean", "by_depth", "nodes"}}; None when no run sampled."""
    pooled: dict[str, tuple[list[float], list[int]]] = {}
    for r in runs:
        for rule, fig in (r["extras"].get("expected_acceptance") or {}).items():
            sums, counts = pooled.setdefault(rule, ([], []))
            for d, (mean, n) in enumerate(zip(fig["by_depth"], fig["nodes_by_depth"], strict=True)):
                while len(sums) <= d:
                    sums.append(0.0)
                    counts.append(0)
                sums[d] += (mean or 0.0) * n
                counts[d] += n
    if not pooled:
        return None
    return {
        rule: {
            "mean": sum(s) / max(sum(c), 1),
            "by_depth": [x / n if n else None for x, n in zip(s, c, strict=True)],
            "nodes": sum(c),
        }
        for rule, (s, c) in pooled.items()
    }

def _mean_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return sum(values) / len(values) if values else None

def _mean_extras(runs: list[dict]) -> dict:
    """Method-specific figures (RunFinished.extras) averaged over prompts."""
    keys = {k for r in runs for k, v in r["extras"].items() if isinstance(v, int | float)}
    return {k: sum(r["extras"].get(k, 0) for r in runs) / len(runs) for k in sorted(keys)}

def _skeleton_totals(runs: list[dict]) -> dict:
    """SoT / SGD over the prompts: waves, edges and forwarded tokens summed, and which member each difficulty
    got ({difficulty: {member: points}}); {} for other methods. Per prompt they are in each run's extras."""
    mine = [r["extras"] for r in runs if "waves" in r["extras"]]
    if not mine:
        return {}
    chosen: dict[str, dict[str, int]] = {}
    for x in mine:
        for d, member in zip(x.get("difficulty") or [], x.get("members", []), strict=False):
            chosen.setdefault(str(d), {}).setdefault(member, 0)
            chosen[str(d)][member] += 1
    return {
        "waves_total": sum(x["waves"] for x in mine),
        "edges_total": sum(x.get("edges", 0) for x in mine),
        "forwarded_tokens_total": sum(x.get("forwarded_tokens", 0) for x in mine),
        "prompts_in_2plus_waves": sum(x["waves"] >= 2 for x in mine),
        "difficulty_to_member": chosen,
    }

def _pooled_depth_rates(runs: list[dict]) -> list[float] | None:
    deepest = max((len(r["depth_reached"]) for r in runs), default=0)
    if not deepest:
        return None
    reached, accepted = [0] * deepest, [0] * deepest
    for r in runs:
        for d, (n, a) in enumerate(zip(r["depth_reached"], r["depth_accepted"], strict=True)):
            reached[d] += n
            accepted[d] += a
    return rates(reached, accepted)
