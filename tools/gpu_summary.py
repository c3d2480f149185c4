"""The GPU report's summary (tools/gpu_report.sh): the figures its result files hold, beside the targets of
docs/methods.md ("GPU engine"), printed for the end of the log. Reads whichever of the report's files exist.

    python tools/gpu_summary.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"ar_tok_s": 2000.0, "eagle": 2.0, "pld": 1.3, "bpd": 1.3, "sgd": 1.5}


def load(folder: Path, name: str) -> dict | None:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def num(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def bench_lines(bench: dict, title: str) -> list[str]:
    env = bench.get("environment", {})
    prompts = max((m["prompts"] for m in bench["methods"].values()), default=0)
    lines = [
        f"{title}: {env.get('device_name', bench['device'])}, {bench['dtype']}, "
        f"{bench['config'].get('max_new_tokens')} new tokens, {prompts} prompts",
        "  method       tok/s   x ar  eq-len  accepted  identical  reads/step  draft/fwd  verify/step",
    ]
    for name, m in bench["methods"].items():
        lines.append(
            f"  {name:<10} {num(m['tok_s'], '8.1f')} {num(m['speedup_vs_ar'], '6.2f')} "
            f"{num(m.get('equal_length_speedup_vs_ar'), '6.2f')} {num(m['mean_accepted'], '9.2f')} "
            f"{'-' if m['identical_to_ar'] is None else str(m['identical_to_ar']) + '/' + str(m['prompts']):>10} "
            f"{num(m.get('host_reads_per_step'), '11.2f')} {num(m.get('draft_cost_per_forward'), '10.3f')} "
            f"{num(m.get('verify_cost_per_step'), '12.3f')}"
        )
    for r in bench["runs"]:
        if "failed" in r:
            lines.append(f"  failed: {r['method']} on {r['id']}: {r['failed']}")
    return lines


def targets(bf16: dict | None, multipart: dict | None) -> list[str]:
    out = []
    methods = (bf16 or {}).get("methods", {})
    if "ar" in methods:
        tok_s = methods["ar"]["tok_s"]
        out.append(f"  ar >= {TARGETS['ar_tok_s']:,.0f} tok/s: {tok_s:,.0f} ({'met' if tok_s >= TARGETS['ar_tok_s'] else 'missed'})")
    for name in ("eagle", "pld", "bpd"):
        x = methods.get(name, {}).get("speedup_vs_ar")
        if x is not None:
            out.append(f"  {name} >= {TARGETS[name]}x ar: {x:.2f}x ({'met' if x >= TARGETS[name] else 'missed'})")
    sgd = (multipart or {}).get("methods", {}).get("sgd", {}).get("equal_length_speedup_vs_ar")
    if sgd is not None:
        out.append(f"  sgd >= {TARGETS['sgd']}x ar equal-length: {sgd:.2f}x ({'met' if sgd >= TARGETS['sgd'] else 'missed'})")
    return out


def main(folder: str) -> int:
    out = Path(folder)
    lines = ["== summary"]
    named = {
        "bench-bf16.json": "bfloat16",
        "bench-multipart.json": "multi-part prompts, bfloat16",
        "bench-f32.json": "float32 identity pass",
        "bench-compiled.json": "ar compiled (torch.compile, reduce-overhead)",
        "bench-matched.json": "every step >= 16 tokens wide (DECODING_LAB_MIN_BUCKET=16)",
    }
    results = {name: load(out, name) for name in named}
    for name, title in named.items():
        if results[name]:
            lines += bench_lines(results[name], title)
    lines += ["targets:"] + targets(results["bench-bf16.json"], results["bench-multipart.json"])
    profile = load(out, "profile.json")
    for p in (profile or {}).get("profiles", []):
        lines.append(
            f"profile {p['method']}: {p['wall_ms_per_step']:.3f} ms a step on the clock, "
            f"{num(p['device_ms_per_step'], '.3f')} ms of device time, {p['host_reads']} host reads in {p['steps']} steps"
        )
    drift = load(out, "drift.json")
    for name, d in (drift or {}).get("methods", {}).items():
        lines.append(
            f"drift {name}: {d['identical']}/{d['prompts']} identical to bfloat16 ar; ar's margin where they part "
            f"(median) {num(d['median_ar_margin_at_parting'], '.3f')}, a verification-shaped forward's gap "
            f"{num(d['median_verify_shape_gap'], '.3f')}"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
