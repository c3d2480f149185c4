"""Why a lossless method's tokens part from ar's in bfloat16 (docs/methods.md, "GPU engine"): for each method and
prompt, whether the answer is identical to bfloat16 ar's; where it is not, the first token that differs, ar's
margin there (its top-1 logit minus its top-2) and how far a verification-shaped forward is from ar's step at
that position: the same context's last ``--width`` tokens forwarded at once, as a draft chain is verified, its
logits at the last position against ar's one-token step (the same weights and context; another matmul shape,
so another reduction order). A part at a near-tie with a gap of the same size is the reduction order, not a
bug; a part at a wide margin would be one.

    python tools/bf16_drift.py --device cuda --dtype bfloat16 --tokens 128 --limit 10 --json drift.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.config import GenerationConfig, ModelSpec  # noqa: E402
from core.engine import make_engine  # noqa: E402
from core.metrics import summarize  # noqa: E402
from core.models import load_model  # noqa: E402
from core.prompts import load_prompts, split_prompts  # noqa: E402
from core.registry import METHODS  # noqa: E402
from core.text import encode_prompt  # noqa: E402


@torch.inference_mode()
def ar_step_logits(model, prompt_ids: list[int], answer: list[int], i: int) -> torch.Tensor:
    """ar's logits [V] for answer token i, computed as ar computes them: the prompt in one forward, then one
    token a step."""
    engine = make_engine(model, max_len=len(prompt_ids) + i + 2)
    logits = engine.forward(torch.tensor([prompt_ids], device=model.device), last_only=True).logits[0, -1]
    engine.commit(len(prompt_ids))
    for tok in answer[:i]:
        logits = engine.forward(torch.tensor([[tok]], device=model.device)).logits[0, -1]
        engine.commit(1)
    return logits.float()


@torch.inference_mode()
def chain_logits(model, context: list[int], width: int) -> torch.Tensor:
    """The logits [V] at the context's last position when its last ``width`` tokens are forwarded at once."""
    engine = make_engine(model, max_len=len(context) + 1)
    head, tail = context[:-width], context[-width:]
    if head:
        engine.forward(torch.tensor([head], device=model.device))
        engine.commit(len(head))
    return engine.forward(torch.tensor([tail], device=model.device)).logits[0, -1].float()


def parting(model, prompt: str, ar: list[int], mine: list[int], gen: GenerationConfig, width: int) -> dict | None:
    i = next((j for j, (a, b) in enumerate(zip(ar, mine, strict=False)) if a != b), None)
    if i is None:
        return None
    ids = encode_prompt(model, prompt, gen.max_new_tokens)
    step = ar_step_logits(model, ids, ar, i)
    top = step.topk(2).values
    chained = chain_logits(model, ids + ar[:i], min(width, len(ids) + i))
    return {
        "token": i,
        "ar_margin": float(top[0] - top[1]),
        "method_token_gap": float(step.max() - step[mine[i]]),
        "verify_shape_gap": float((chained - step).abs().max()),
        "verify_shape_flips": int(chained.argmax()) != int(step.argmax()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--methods", default="eagle,rrs,bpd,pld")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--width", type=int, default=8, help="tokens forwarded at once, as a verification does")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    model = load_model(ModelSpec(args.model, args.device, args.dtype))
    gen = GenerationConfig(args.tokens)
    prompts = split_prompts(load_prompts(), "held-out")[: args.limit]
    answers = {p.id: summarize(list(METHODS["ar"].run(model, p.prompt, gen))).output_ids for p in prompts}
    report = {}
    for name in args.methods.split(","):
        parts = {}
        for p in prompts:
            mine = summarize(list(METHODS[name].run(model, p.prompt, gen))).output_ids
            parts[p.id] = parting(model, p.prompt, answers[p.id], mine, gen, args.width)
        parted = [x for x in parts.values() if x]
        report[name] = {
            "identical": sum(x is None for x in parts.values()),
            "prompts": len(parts),
            "median_ar_margin_at_parting": statistics.median(x["ar_margin"] for x in parted) if parted else None,
            "median_verify_shape_gap": statistics.median(x["verify_shape_gap"] for x in parted) if parted else None,
            "partings": parts,
        }
        r = report[name]
        print(f"{name}: {r['identical']}/{r['prompts']} identical to ar; at the partings ar's margin (median) "
              f"{r['median_ar_margin_at_parting']}, a verification-shaped forward's gap {r['median_verify_shape_gap']}")
    Path(args.json).write_text(json.dumps({"model": model.describe(), "tokens": args.tokens, "methods": report}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
