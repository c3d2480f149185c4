"""Run metrics computed from trace events, named as serving engines name them.

tokens/s = generated tokens / wall time (prefill included); decode tokens/s = the tokens after the first step over
the seconds from the first step's end to the run's end (the decode clock: the prompt's prefill, which the first
step holds, is not on it; neither is a page's own work, which no clock holds); time to first token;
per-token latency (time between committed tokens, split evenly over a multi-token
step); mean accepted length = tokens committed per target forward (None for
methods that draft nothing); acceptance rate = accepted / drafted draft tokens
(None when nothing was drafted); speedup vs AR = tok_s / tok_s(AR), same run; wall-clock
speedup vs AR = wall(AR) / wall; equal-length speedup (SoT / SGD, whose answers differ from AR's in
length too) = AR's time to an answer as long as this one over this one's wall time. Every page,
component and the bench compute speedups here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.trace import RunFinished, RunStarted, StepCommitted, TreeStep


@dataclass
class RunMetrics:
    method: str
    tokens: int
    wall_s: float
    tok_s: float
    decode_s: float | None  # the decode clock: from the first step's end to the run's end
    decode_tok_s: float | None  # tokens after the first step / decode_s
    ttft_s: float | None
    per_token_latency_s: list[float]
    forwards: int
    mean_accepted: float | None
    acceptance_rate: float | None
    output_ids: list[int]
    text: str
    extras: dict


def summarize(events: list) -> RunMetrics:
    start = next(e for e in events if isinstance(e, RunStarted))
    steps = [e for e in events if isinstance(e, StepCommitted)]
    end = next((e for e in events if isinstance(e, RunFinished)), None)
    tokens = sum(len(s.token_ids) for s in steps)
    wall = end.wall_s if end else (steps[-1].t if steps else 0.0)
    latencies, prev = [], 0.0
    for s in steps:
        n = len(s.token_ids)
        latencies += [(s.t - prev) / n] * n if n else []
        prev = s.t
    forwards = sum(s.forwards for s in steps)
    drafted = sum(s.drafted for s in steps)
    accepted = sum(s.accepted for s in steps)
    decode_s = wall - steps[0].t if len(steps) > 1 else None
    decode_tokens = tokens - len(steps[0].token_ids) if steps else 0
    return RunMetrics(
        method=start.method,
        tokens=tokens,
        wall_s=wall,
        tok_s=tokens / wall if wall > 0 else 0.0,
        decode_s=decode_s,
        decode_tok_s=decode_tokens / decode_s if decode_s and decode_s > 0 else None,
        ttft_s=steps[0].t if steps else None,
        per_token_latency_s=latencies,
        forwards=forwards,
        mean_accepted=tokens / forwards if drafted and forwards else None,
        acceptance_rate=accepted / drafted if drafted else None,
        output_ids=end.output_ids if end else [t for s in steps for t in s.token_ids],
        text=end.text if end else "".join(x for s in steps for x in s.texts),
        extras=end.extras if end else {},
    )


def speedup(metrics: RunMetrics, ar: RunMetrics) -> float | None:
    """tokens/s relative to the AR run of the same prompt (None if AR produced nothing)."""
    return ratio(metrics.tok_s, ar.tok_s)


def decode_speedup(metrics: RunMetrics, ar: RunMetrics) -> float | None:
    """Decode tokens/s relative to the AR run of the same prompt: the figure the pages show and the bench's
    ``decode_speedup_vs_ar`` (None when either run has no decode clock: a single step)."""
    if metrics.decode_tok_s is None or ar.decode_tok_s is None:
        return None
    return ratio(metrics.decode_tok_s, ar.decode_tok_s)


def wall_speedup(metrics: RunMetrics, ar: RunMetrics) -> float | None:
    """AR's wall-clock over this run's, same prompt (None if this run took no time)."""
    return ratio(ar.wall_s, metrics.wall_s)


def token_times(metrics: RunMetrics) -> list[float]:
    """When each token was committed (seconds since the start; a multi-token step's tokens spread evenly)."""
    out, now = [], 0.0
    for x in metrics.per_token_latency_s:
        now += x
        out.append(now)
    return out


def time_to(times: list[float], wall_s: float, tokens: int) -> tuple[float, bool]:
    """Seconds a run took to its ``tokens``-th token (``times``: ``token_times``): measured when it got that
    far, else extrapolated at its mean seconds per token; (seconds, extrapolated)."""
    if tokens <= len(times):
        return (times[tokens - 1] if tokens else 0.0), False
    return (wall_s / len(times) * tokens if times else 0.0), True


def equal_length_speedup(metrics: RunMetrics, ar: RunMetrics) -> tuple[float | None, bool]:
    """Time to a complete answer of equal length: AR's time to as many tokens as this run's answer holds
    (its output ids, SoT / SGD titles included) over this run's wall time; (speedup, AR extrapolated)."""
    seconds, extrapolated = time_to(token_times(ar), ar.wall_s, len(metrics.output_ids))
    return ratio(seconds, metrics.wall_s), extrapolated


def time_left(done: int, total: int, elapsed: float) -> str:
    """ "about 2 min left" from the rate so far (done of total in elapsed seconds); "" before there is a rate."""
    if not done or done >= total:
        return ""
    left = elapsed / done * (total - done)
    return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.0f} min left"


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is not positive (a speedup against nothing)."""
    return a / b if a is not None and b and b > 0 else None


def format_speedup(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "–"


def depth_counts(events: list) -> tuple[list[int], list[int]]:
    """For depth d = 1..L (index d - 1, L the deepest tree of the run): how many steps accepted through
    depth d - 1, and how many of those accepted a draft token at depth d. A step whose tree had nothing
    to offer at depth d (a dynamic tree stopped above it, or left the accepted node childless) counts as
    reaching d - 1 without accepting at d, so that 1 + sum_d prod_{i<=d} a_i is the run's mean accepted
    length plus the final token, whatever the trees' shapes (``core.cost_model``)."""
    steps = [e for e in events if isinstance(e, TreeStep)]
    deepest = max((max(s.depths) for s in steps), default=0)
    reached, accepted = [0] * deepest, [0] * deepest
    for s in steps:
        got = len(s.accepted_path) - 1
        for d in range(1, min(got + 1, deepest) + 1):
            reached[d - 1] += 1
            accepted[d - 1] += got >= d
    return reached, accepted


def rates(reached: list[int], accepted: list[int]) -> list[float]:
    return [a / r for r, a in zip(reached, accepted, strict=True) if r]


def acceptance_per_depth(events: list) -> list[float]:
    """Per draft depth d: P(a draft token is accepted at depth d | the walk reached depth d - 1)."""
    return rates(*depth_counts(events))
