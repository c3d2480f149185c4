"""Recorded benchmark results: bench JSON files measured by the developers and shipped in ``assets/bench/``,
shown on the Benchmark page beside a user's own runs, and what every bench result says of where it ran.

A report is the JSON ``python -m core.bench`` writes, with its ``environment`` (device name, torch and
transformers versions, Python, CPU count, date), so a figure is never shown without the machine it came from.
Record one with ``python -m core.bench ... --json assets/bench/NAME.json``.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers

REPORTS = Path(__file__).resolve().parent.parent / "assets" / "bench"
NEEDED = {"model": str, "device": str, "dtype": str, "environment": dict, "methods": dict, "runs": list}
RUN_FIELDS = ("method", "id", "category", "tokens", "wall_s", "tok_s", "mean_accepted", "acceptance_rate")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name from /proc/cpuinfo (the platform's word for it elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def environment(device: torch.device) -> dict:
    """Where a bench result was measured."""
    return {
        "device_name": device_name(device),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


@dataclass(frozen=True)
class Report:
    name: str  # the file's stem
    result: dict  # the bench JSON

    def describe(self) -> str:
        env, r = self.result["environment"], self.result
        return (
            f"{r['model']} on {env.get('device_name', r['device'])} ({r['device']}, {env.get('cpus', '?')} CPUs), "
            f"{r['dtype']}; torch {env.get('torch', '?')}, transformers {env.get('transformers', '?')}; "
            f"measured {env.get('date', '?')}"
        )


def read_report(path: Path) -> Report:
    """One recorded result, or a ValueError saying in one sentence why the file is not one."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"The recorded result '{path.name}' is not readable JSON ({type(exc).__name__}).") from None
    if not isinstance(result, dict):
        raise ValueError(f"The recorded result '{path.name}' is not a bench JSON object.")
    for key, kind in NEEDED.items():
        if not isinstance(result.get(key), kind):
            raise ValueError(f"The recorded result '{path.name}' has no '{key}' ({kind.__name__}).")
    if not all(isinstance(m, dict) and isinstance(m.get("tok_s"), int | float) for m in result["methods"].values()):
        raise ValueError(f"The recorded result '{path.name}' has a method without a number for tok_s.")
    runs = result["runs"]
    done = [r for r in runs if isinstance(r, dict) and "failed" not in r]
    if not done or not all(isinstance(r, dict) for r in runs) or not all(set(RUN_FIELDS) <= r.keys() for r in done):
        raise ValueError(f"The recorded result '{path.name}' has no complete runs ({', '.join(RUN_FIELDS)} each).")
    return Report(path.stem, result)


def recorded_reports(folder: Path = REPORTS) -> tuple[list[Report], list[str]]:
    """Every readable report in ``folder`` (by name), and one sentence for each file that is not one."""
    reports, problems = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            reports.append(read_report(path))
        except ValueError as exc:
            problems.append(str(exc))
    return reports, problems
