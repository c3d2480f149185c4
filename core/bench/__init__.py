"""The benchmark (``python -m core.bench``; docs/methods.md, "Metrics"), one job per module: ``cli`` (arguments,
the command), ``running`` (warm-up, the interleaved runs, the result object), ``summary`` (per-method totals),
``costs`` (what drafting costs in AR steps, the cost model), ``printing`` (the printout), ``report`` (the files)."""

from core.bench.cli import main
from core.bench.running import WARMUP_TOKENS, run_bench, run_once
from core.bench.summary import summarize_runs

__all__ = ["WARMUP_TOKENS", "main", "run_bench", "run_once", "summarize_runs"]
