"""Running the bench: every method on every prompt, interleaved per prompt, after one untimed warm-up run of
each; the result object (``run_bench``)."""

from __future__ import annotations

from collections.abc import Callable

from core.bench.report import save_trace
from core.bench.summary import first_step, summarize_runs
from core.config import GenerationConfig
from core.cost_model import cost_inputs
from core.engine.cost import known_curve
from core.metrics import RunMetrics, depth_counts, summarize, token_times
from core.prompts import Prompt
from core.registry import RUN_ERRORS, get_method
from core.reports import environment
from core.served import SERVED, SERVED_METHODS, base_method, baseline
from core.quality import proxy_scores
from core.text import InputError
from core.trace import StepCommitted

WARMUP_TOKENS = 8


def check_methods(methods: list[str], served) -> None:
    """Every name is a method; "@served" only for ar, sot and sgd and only with an endpoint."""
    for name in methods:
        get_method(base_method(name))
        if name.endswith(SERVED) and base_method(name) not in SERVED_METHODS:
            raise ValueError(f"Only {', '.join(SERVED_METHODS)} run through a server, not {base_method(name)}.")
        if name.endswith(SERVED) and served is None:
            raise ValueError(f"{name} needs --endpoint URL and --served-model NAME.")

def method_overrides(method: str, options: dict) -> dict:
    """The bench's method options (k, depth, draft, layer, draft_model) that this method lets a user set."""
    if method.endswith(SERVED):
        return {}
    return {k: v for k, v in options.items() if k in get_method(method).tunable}

def ignored_options(methods: list[str], options: dict) -> dict[str, list[str]]:
    """Per method, the given options it does not take (e.g. ``--k`` for ``pld``, a single chain), so the
    bench says so instead of dropping them silently."""
    out = {}
    for name in methods:
        tunable = () if name.endswith(SERVED) else get_method(name).tunable
        ignored = sorted(k for k in options if k not in tunable and k != "served")
        if ignored:
            out[name] = ignored
    return out

def run_once(
    model, method: str, prompt: str, gen: GenerationConfig, options: dict | None = None
) -> tuple[list, RunMetrics]:
    options = options or {}
    if method.endswith(SERVED):
        events = list(SERVED_METHODS[base_method(method)](options["served"], prompt, gen))
    else:
        events = list(get_method(method).run(model, prompt, gen, **method_overrides(method, options)))
    return events, summarize(events)

def _record(method: str, p: Prompt, m: RunMetrics, events: list) -> dict:
    reached, accepted = depth_counts(events)
    return {
        "method": method,
        "id": p.id,
        "category": p.category,
        "output_ids": m.output_ids,
        "text": m.text,
        "tokens": m.tokens,
        "wall_s": m.wall_s,
        "tok_s": m.tok_s,
        "decode_s": m.decode_s,
        "decode_tokens": m.tokens - len(first_step(events)),
        "ttft_s": m.ttft_s,
        "forwards": m.forwards,
        "steps": sum(isinstance(e, StepCommitted) for e in events),
        "mean_accepted": m.mean_accepted,
        "acceptance_rate": m.acceptance_rate,
        "depth_reached": reached,
        "depth_accepted": accepted,
        "cost_inputs": cost_inputs(events),
        "token_times": [round(x, 5) for x in token_times(m)],
        "extras": m.extras,
    }

def add_quality_proxies(model, prompts: list[Prompt], runs: list[dict]) -> None:
    """For methods whose answers differ from AR's by design (``lossless=False``: sot, sgd) and for AR
    beside them: ``proxy_loglik`` (the full model's mean log-likelihood of the answer, nats per token)
    ``proxy_overlap_with_ar`` (unigram F1 with AR's answer; None without an AR run) and ``proxy_repetition``
    (the share of the answer's token 4-grams seen earlier in it), core.quality."""
    for p in prompts:
        for ar in ("ar", "ar" + SERVED):
            mine = [
                r
                for r in runs
                if r["id"] == p.id
                and baseline(r["method"]) == ar
                and (r["method"] == ar or not get_method(base_method(r["method"])).lossless)
            ]
            if all(r["method"] == ar for r in mine) or ar not in {r["method"] for r in mine}:
                continue
            scores = proxy_scores(model, p.prompt, {r["method"]: r["text"] for r in mine}, reference=ar)
            for r in mine:
                r["proxy_loglik"] = scores[r["method"]]["loglik"]
                r["proxy_overlap_with_ar"] = scores[r["method"]]["overlap_with_ar"]
                r["proxy_repetition"] = scores[r["method"]]["repetition"]

def warm_up(model, prompts: list[Prompt], methods: list[str], gen: GenerationConfig, options: dict) -> None:
    """One short untimed run of each method, so no timed run pays one-off costs. The first prompt that fits
    the context serves; a method whose settings are wrong fails here, before any timed work."""
    warm = GenerationConfig(max_new_tokens=min(WARMUP_TOKENS, gen.max_new_tokens), sampling=gen.sampling)
    for name in methods:
        for p in prompts:
            try:
                run_once(model, name, p.prompt, warm, options)
                break
            except InputError:  # this prompt does not fit; its timed runs will be recorded as failed
                continue

def run_bench(
    model,
    prompts: list[Prompt],
    methods: list[str],
    gen: GenerationConfig,
    progress: Callable[[int, int, str], None] | None = None,
    options: dict | None = None,
    trace_dir: str | None = None,
) -> dict:
    """Warm up, then run each prompt through each method; return the bench JSON object.

    ``options``: k, depth, draft, layer, draft_model for the methods that take them."""
    options = options or {}
    check_methods(methods, options.get("served"))
    warm_up(model, prompts, methods, gen, options)
    runs, total, done = [], len(prompts) * len(methods), 0
    for p in prompts:
        for name in methods:
            try:
                events, metrics = run_once(model, name, p.prompt, gen, options)
            except RUN_ERRORS as exc:  # e.g. a prompt too long for the context: that run fails, the rest go on
                runs.append({"method": name, "id": p.id, "category": p.category, "failed": str(exc)})
            else:
                runs.append(_record(name, p, metrics, events))
                if trace_dir:
                    save_trace(trace_dir, f"{name}-{p.id}", events)
            done += 1
            if progress:
                progress(done, total, f"{name} on {p.id}")
    add_quality_proxies(model, prompts, [r for r in runs if "failed" not in r])
    return {
        "model": model.display_name,
        "device": model.device.type,
        "dtype": str(model.dtype).removeprefix("torch."),
        "environment": environment(model.device),
        "config": {
            **gen.to_dict(),
            **{k: v for k, v in options.items() if k not in ("draft_model", "pool_models", "served")},
            **(options["served"].describe() if "served" in options else {}),
        },
        "ignored_options": ignored_options(methods, options),
        "methods": summarize_runs(runs, methods, known_curve(model)),
        "runs": runs,
    }
