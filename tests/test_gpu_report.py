"""The GPU report's dry run on this CPU (tools/gpu_report.sh with DEV=cpu NTOK=4 LIMIT=1): every step runs within
its limit and leaves its file, at most 8 files in $OUT (what comes back from the GPU machine), the bench files
are bench results with their environment (so they show on the Benchmark page), and the log ends with the
summary against the targets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.reports import read_report

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "gpu.log",
    "bench-bf16.json",
    "bench-multipart.json",
    "bench-f32.json",
    "bench-compiled.json",
    "bench-matched.json",
    "profile.json",
    "drift.json",
}


@pytest.mark.slow
def test_the_gpu_report_dry_runs_on_the_cpu(tmp_path):
    env = {**os.environ, "DEV": "cpu", "NTOK": "4", "LIMIT": "1", "OUT": str(tmp_path), "PY": sys.executable}
    done = subprocess.run(["bash", "tools/gpu_report.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in tmp_path.iterdir()} == FILES
    log = (tmp_path / "gpu.log").read_text()
    steps = [line for line in log.splitlines() if line.startswith("== ") and " rc=" in line]
    assert len(steps) == 8 and all(" rc=0 " in line for line in steps), steps
    for name in FILES - {"gpu.log", "profile.json", "drift.json"}:
        result = read_report(tmp_path / name).result  # what the Benchmark page reads
        assert result["environment"]["torch"] and result["methods"]["ar"]["host_reads_per_step"] == 1.0
    bf16 = json.loads((tmp_path / "bench-bf16.json").read_text())["methods"]
    assert set(bf16) == {"ar", "hf", "eagle", "rrs", "spechub", "bpd", "pld", "speed"}
    assert all(bf16[m]["host_reads_per_step"] <= 2 for m in ("eagle", "rrs", "spechub", "bpd", "pld"))
    f32 = json.loads((tmp_path / "bench-f32.json").read_text())["methods"]
    assert all(m["identical_to_ar"] == m["prompts"] for m in f32.values())
    assert "targets:" in log and "ar >= 2,000 tok/s" in log and "drift eagle" in log
