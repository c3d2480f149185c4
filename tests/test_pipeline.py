"""SPEED: identical to AR (greedy and sampled, same seed), ticks and flushes accounted, bad settings refused."""

import pytest

from core.config import GenerationConfig, SamplingConfig
from core.heads import DEFAULT_EXIT_LAYER, load_exit_head
from core.metrics import summarize
from core.registry import METHODS
from core.speed import parameter_shared_model, stage_bounds
from core.trace import PipelineTick, dumps, loads


def run(model, name, gen, **options):
    return list(METHODS[name].run(model, "The pipeline should match AR", gen, **options))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("stages", [2, 3])
def test_speed_output_equals_ar_with_the_same_seed(tiny, temperature, stages):
    gen = GenerationConfig(20, SamplingConfig(temperature, seed=4))
    ar = summarize(run(tiny, "ar", gen)).output_ids
    events = run(tiny, "speed", gen, layer=1, stages=stages)
    m = summarize(events)
    assert m.output_ids == ar
    ticks = [e for e in events if isinstance(e, PipelineTick)]
    assert m.extras["ticks"] == len(ticks) and m.extras["hits"] + m.extras["flushes"] <= len(ticks)
    assert sum(t.hit is True for t in ticks) == m.extras["hits"]
    assert sum(bool(t.flushed) for t in ticks) == m.extras["flushes"]
    # every committed token leaves the last stage exactly once
    assert sum(bool(t.committed_text) or t.hit is not None for t in ticks) >= len(m.output_ids) - 1
    assert loads(dumps(events)) == events


def test_stage_bounds_and_the_parameter_shared_model():
    assert stage_bounds(30, 8, 2) == [0, 8, 30]
    assert stage_bounds(30, 8, 3) == [0, 8, 19, 30]
    with pytest.raises(ValueError, match="exit layer"):
        stage_bounds(30, 30, 2)
    with pytest.raises(ValueError, match="do not fit"):
        stage_bounds(4, 3, 3)
    # 2 stages, batching 2 tokens costs 1.2x one token, 10 tokens in 12 ticks: 2 / 1.2 * 10 / 12
    assert parameter_shared_model((1.0, 1.2), 2, 10, 12) == pytest.approx(2 / 1.2 * 10 / 12)


def test_hit_rates_cli_writes_every_layer(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "hr.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.train",
            "hit-rates",
            "--model",
            "tiny-random-llama",
            "--tokens",
            "4",
            "--out",
            str(out),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["layers"] == [1, 2, 3] and len(data["plain"]) == 3 and all(0 <= x <= 1 for x in data["plain"])


def test_exit_heads_load_or_say_why_not(tiny, embedded):
    head, notice = load_exit_head(embedded, DEFAULT_EXIT_LAYER)  # shipped in assets/heads
    assert head is not None and notice is None
    head, notice = load_exit_head(tiny, 1)
    assert head is None and "python -m core.train exit-head --layer 1" in notice
    n = tiny.config.num_hidden_layers
    for bad in (0, n, -1):
        with pytest.raises(ValueError, match=f"between 1 and {n - 1}"):
            load_exit_head(tiny, bad)
