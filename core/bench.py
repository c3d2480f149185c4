"""Command-line benchmark: every method on every prompt, same model and run, JSON out.

    python -m core.bench --prompts assets/prompts/suite.jsonl --methods ar,hf \
        --max-new-tokens 64 --temperature 0 --seed 0 --device auto --dtype auto \
        [--model ID_OR_PATH] [--limit N] [--category C] --json OUT.json

Methods run interleaved per prompt (so drift in machine speed hits all alike) after
one untimed warm-up run of each. The JSON holds per-method totals ("methods") and
every run ("runs"); see ``summarize_runs`` for the fields. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from core.config import ConfigError, GenerationConfig, ModelSpec, SamplingConfig
from core.cost_model import cost_inputs, explain_inputs, pool_inputs
from core.engine.cost import known_curve, verify_cost_curve
from core.heads.vocab import VOCAB_CHOICES
from core.metrics import RunMetrics, depth_counts, rates, ratio, summarize, time_to, token_times
from core.models import ModelLoadError, load_model
from core.prompts import SPLITS, SUITE, Prompt, load_prompts, split_prompts
from core.registry import METHODS, RUN_ERRORS, get_method
from core.reports import environment
from core.served import SERVED, SERVED_METHODS, Served, base_method, baseline
from core.skeleton.quality import proxy_scores
from core.speculative.drafts import DRAFTS
from core.text import InputError
from core.trace import StepCommitted, dumps

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
        rec.update(_relative_costs(mine, unit))
        rec["cost_model"] = _cost_model(mine, rec, unit, curve)
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


def _cost_model(runs: list[dict], rec: dict, unit: float, curve: dict | None) -> dict | None:
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


def _relative_costs(runs: list[dict], ar_token_s: float) -> dict:
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


def add_quality_proxies(model, prompts: list[Prompt], runs: list[dict]) -> None:
    """For methods whose answers differ from AR's by design (``lossless=False``: sot, sgd) and for AR
    beside them: ``proxy_loglik`` (the full model's mean log-likelihood of the answer, nats per token)
    ``proxy_overlap_with_ar`` (unigram F1 with AR's answer; None without an AR run) and ``proxy_repetition``
    (the share of the answer's token 4-grams seen earlier in it), core.skeleton.quality."""
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


def _mean_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def _mean_extras(runs: list[dict]) -> dict:
    """Method-specific figures (RunFinished.extras) averaged over prompts."""
    keys = {k for r in runs for k, v in r["extras"].items() if isinstance(v, int | float)}
    return {k: sum(r["extras"].get(k, 0) for r in runs) / len(runs) for k in sorted(keys)}


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
                    Path(trace_dir).mkdir(parents=True, exist_ok=True)
                    (Path(trace_dir) / f"{name}-{p.id}.json").write_text(dumps(events))
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


def _describe_cost_model(cm: dict) -> str:
    def num(x) -> str:
        return "none" if x is None else f"{x:.3f}"

    return (
        f"cost model: tokens per step {cm['predicted_tokens_per_step']:.2f} predicted / "
        f"{cm['measured_tokens_per_step']:.2f} measured; speedup {cm['predicted_speedup']:.2f}x predicted / "
        f"{num(cm['measured_speedup'])}x measured; {cm['cost_label']} {cm['cost']:.3f}; break-even acceptance "
        f"{num(cm['break_even_acceptance'])}, break-even cost {num(cm['break_even_cost'])}"
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", default=str(SUITE), help="JSONL prompt suite (default: the shipped suite)")
    ap.add_argument("--methods", default="ar,hf", help=f"comma-separated, from: {', '.join(METHODS)}")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0 = all)")
    ap.add_argument("--category", default="", help="use only prompts of this category")
    ap.add_argument("--split", default="all", choices=SPLITS, help="all, or the suite's train / held-out prompts")
    ap.add_argument("--k", type=int, help="tree methods: children per node (spec/pld: 1)")
    ap.add_argument("--depth", type=int, help="speculative methods: draft depth L")
    ap.add_argument("--draft", choices=list(DRAFTS), help="speculative methods: draft source")
    ap.add_argument(
        "--draft-vocab", choices=list(VOCAB_CHOICES), help="self-draft and BPD heads: reduced (default) or full"
    )
    ap.add_argument("--max-nodes", type=int, help="eagle: most nodes of a dynamic tree (the verify-cost curve picks)")
    ap.add_argument("--lookup", type=int, help="eagle: tokens of a chain copied from the context grafted on the tree")
    ap.add_argument(
        "--layer", type=int, help="self-draft, speed, bpd-neural: exit layer e; sgd: layers of the cheap pool member"
    )
    ap.add_argument("--stages", type=int, help="speed: pipeline stages")
    ap.add_argument("--block", type=int, help="bpd methods: block size k (base + k - 1 heads)")
    ap.add_argument("--topk", type=int, help="bpd-ngram/-neural: tokens per head in the lattice; eagle: nodes expanded")
    ap.add_argument("--paths", type=int, help="bpd-ngram/-neural: drafts verified per step (p)")
    ap.add_argument("--alpha", type=float, help="bpd-ngram/-neural: weight of the LM in the rescoring")
    ap.add_argument("--point-tokens", type=int, help="sot/sgd: tokens per point (default: max new tokens / points)")
    ap.add_argument("--pool-models", default="", help="sgd: pool models, cheapest first, comma-separated")
    ap.add_argument("--draft-model", default="", help="draft source 'model': its id or path")
    ap.add_argument("--trace-dir", default="", help="also save every run's trace as METHOD-ID.json here")
    ap.add_argument(
        "--verify-curve",
        action="store_true",
        help="also measure v(n), a forward of n = 1..64 new tokens relative to one (--methods '' for it alone)",
    )
    ap.add_argument(
        "--endpoint", default="", help="an OpenAI-compatible server's URL, for ar@served, sot@served, sgd@served"
    )
    ap.add_argument("--served-model", default="", help="the model name(s) there, cheapest first, comma-separated")
    ap.add_argument("--api-key-env", default="", help="the environment variable holding the server's API key")
    ap.add_argument("--served-timeout", type=float, default=60.0, help="seconds a served request may stay silent")
    ap.add_argument("--json", required=True, help="where to write the results")
    return ap


def _progress_bar(done: int, total: int, label: str) -> None:
    width = 30
    fill = int(width * done / total)
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {label[:40]:<40}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def served_from_args(args) -> Served | None:
    """The server the @served methods use (--endpoint, --served-model, --api-key-env), or None."""
    if not args.endpoint:
        if args.served_model:
            raise ValueError("--served-model needs --endpoint URL.")
        return None
    names = tuple(n.strip() for n in args.served_model.split(",") if n.strip())
    return Served(args.endpoint, names, args.api_key_env, args.served_timeout)


def check_output_path(path: str) -> None:
    """Refuse an output path that cannot be written before any run, not after all of them."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--json {path} is a folder; give a file name.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--json {path}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--json {path} cannot be written here (no permission).")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_output_path(args.json)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        served = served_from_args(args)
        check_methods(methods, served)
        gen = GenerationConfig(args.max_new_tokens, SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed))
        spec = ModelSpec(args.model, args.device, args.dtype)
        prompts = split_prompts(load_prompts(args.prompts), args.split)
        if args.category:
            prompts = [p for p in prompts if p.category == args.category]
            if not prompts:
                raise ValueError(f"No prompt has the category {args.category!r}.")
        prompts = prompts[: args.limit] if args.limit > 0 else prompts
        print(f"loading {args.model} ...", file=sys.stderr)
        model = load_model(spec, lambda f, msg: print(f"  {msg}", file=sys.stderr))
        print(model.describe(), file=sys.stderr)
        options = {
            k: getattr(args, k)
            for k in (
                *("k", "depth", "draft", "layer", "stages", "block", "topk", "paths", "alpha", "point_tokens"),
                *("draft_vocab", "max_nodes", "lookup"),
            )
            if getattr(args, k) is not None
        }
        if served is not None:
            options["served"] = served
        if args.draft_model:
            options["draft_model"] = load_model(ModelSpec(args.draft_model, args.device, args.dtype))
        if args.pool_models:
            names = [n.strip() for n in args.pool_models.split(",") if n.strip()]
            options["pool_models"] = [load_model(ModelSpec(n, args.device, args.dtype)) for n in names]
        for name, ignored in ignored_options(methods, options).items():
            flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
            print(f"note: {name} does not take {flags}; ignored for {name}.", file=sys.stderr)
        result = run_bench(model, prompts, methods, gen, _progress_bar, options, args.trace_dir or None)
        if args.verify_curve:
            print("measuring the verify-cost curve v(n), n = 1..64 ...", file=sys.stderr)
            result["verify_curve"] = verify_cost_curve(model)
    except (ConfigError, ModelLoadError, InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    for name, rec in result["methods"].items():
        fields = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in rec.items()
            if k not in ("acceptance_per_depth", "expected_acceptance", "cost_model")
        )
        if rec["acceptance_per_depth"]:
            fields += ", acceptance_per_depth=[" + ", ".join(f"{x:.2f}" for x in rec["acceptance_per_depth"]) + "]"
        print(f"{name}: {fields}", file=sys.stderr)
        if rec.get("cost_model"):
            print(f"  {_describe_cost_model(rec['cost_model'])}", file=sys.stderr)
        for rule, fig in (rec.get("expected_acceptance") or {}).items():
            depths = ", ".join("-" if x is None else f"{x:.3f}" for x in fig["by_depth"])
            print(f"  exact acceptance if verified by {rule}: {fig['mean']:.3f} (by depth: {depths})", file=sys.stderr)
    if "verify_curve" in result:
        curve = dict(zip(result["verify_curve"]["n"], result["verify_curve"]["relative"], strict=True))
        shown = ", ".join(f"v({n})={curve[n]:.2f}" for n in (1, 2, 4, 8, 16, 32, 64) if n in curve)
        print(f"verify cost: {shown}", file=sys.stderr)
    for r in result["runs"]:
        if "failed" in r:
            print(f"failed: {r['method']} on {r['id']}: {r['failed']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
