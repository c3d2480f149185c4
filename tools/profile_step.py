"""Where a decode step's time goes: ``ar`` and ``eagle`` on one prompt under torch.profiler, after a warm-up run
(graphs captured, heads loaded). Prints per method the host time and the device time per step and the
operators that cost most, and writes the same as JSON.

    python tools/profile_step.py --device cuda --dtype bfloat16 --tokens 128 --json profile.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from core.config import GenerationConfig, ModelSpec  # noqa: E402
from core.metrics import summarize  # noqa: E402
from core.models import load_model  # noqa: E402
from core.prompts import load_prompts  # noqa: E402
from core.registry import METHODS  # noqa: E402

PROMPT = load_prompts()[4].prompt


def profiled(model, name: str, gen: GenerationConfig, top: int) -> dict:
    list(METHODS[name].run(model, PROMPT, gen))  # warm-up: graphs, heads, the verify-cost curve
    cuda = model.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        events = list(METHODS[name].run(model, PROMPT, gen))
        if cuda:
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    m = summarize(events)
    steps = max(sum(1 for e in events if type(e).__name__ == "StepCommitted"), 1)
    table = prof.key_averages()
    device_us = sum(getattr(e, "self_device_time_total", 0) for e in table)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    worst = sorted(table, key=lambda e: -getattr(e, key, 0))[:top]
    return {
        "method": name,
        "tokens": m.tokens,
        "steps": steps,
        "wall_ms_per_step": 1000 * wall / steps,
        "device_ms_per_step": device_us / 1000 / steps if cuda else None,
        "host_reads": m.extras.get("host_reads"),
        "top": [
            {"op": e.key, "calls": e.count, "self_ms": getattr(e, key, 0) / 1000} for e in worst
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--methods", default="ar,eagle")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    model = load_model(ModelSpec(args.model, args.device, args.dtype))
    gen = GenerationConfig(args.tokens)
    out = [profiled(model, name, gen, args.top) for name in args.methods.split(",")]
    Path(args.json).write_text(json.dumps({"model": model.describe(), "profiles": out}, indent=1))
    for p in out:
        device = "-" if p["device_ms_per_step"] is None else f"{p['device_ms_per_step']:.3f}"
        print(f"{p['method']}: {p['steps']} steps, {p['wall_ms_per_step']:.3f} ms a step on the clock, "
              f"{device} ms of device time a step, {p['host_reads']} host reads")
        for op in p["top"]:
            print(f"   {op['self_ms']:9.3f} ms  {op['calls']:6d}x  {op['op'][:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
