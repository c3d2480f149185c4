"""Command-line benchmark: every method on every prompt, same model and run, JSON out.

    python -m core.bench --prompts assets/prompts/suite.jsonl --methods ar,hf         --max-new-tokens 64 --temperature 0 --seed 0 --device auto --dtype auto         [--model ID_OR_PATH] [--limit N] [--category C] --json OUT.json

Methods run interleaved per prompt (so drift in machine speed hits all alike) after
one untimed warm-up run of each. The JSON holds per-method totals ("methods") and
every run ("runs"); see ``summarize_runs`` for the fields. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.bench.printing import print_result
from core.bench.report import write_result
from core.bench.running import check_methods, ignored_options, run_bench
from core.config import ConfigError, GenerationConfig, ModelSpec, SamplingConfig
from core.engine.cost import verify_cost_curve
from core.heads.vocab import VOCAB_CHOICES
from core.models import ModelLoadError, load_model
from core.prompts import SPLITS, SUITE, load_prompts, split_prompts
from core.registry import METHODS
from core.served import Served
from core.speculative.drafts import DRAFTS
from core.text import InputError


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
    write_result(args.json, result)
    print_result(result)
    return 0
