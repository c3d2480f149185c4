"""Settings that used to exhaust memory, crash late or be ignored silently: each now gets one sentence, early."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.config import GenerationConfig, SamplingConfig
from core.engine import make_engine
from core.metrics import summarize
from core.registry import METHODS
from core.runner import RunThread
from core.skeleton.format import MAX_TITLE_CHARS, parse_skeleton
from core.speculative.tree import MAX_TREE_NODES, TreeTopology
from core.trace import RunFinished, RunStarted, StepCommitted, dumps, loads

ROOT = Path(__file__).resolve().parent.parent


def run(model, name, prompt, gen, **options):
    return list(METHODS[name].run(model, prompt, gen, **options))


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "core.bench", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def test_a_huge_tree_is_refused_before_anything_is_built(tiny):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"over the limit of {MAX_TREE_NODES}"):
        TreeTopology.full(2, 64)
    with pytest.raises(ValueError, match="k = 4 and depth 8 has 87,381 nodes"):
        run(tiny, "rrs", "Hi", GenerationConfig(4), k=4, depth=8, layer=2)
    assert time.perf_counter() - t0 < 5


def test_a_kv_cache_over_the_budget_is_refused_before_allocation(tiny):
    with pytest.raises(ValueError, match="GiB per run"):
        make_engine(tiny, batch=2000, max_len=2048)


def test_bench_refuses_an_unwritable_output_before_any_work(tmp_path):
    res = cli("--model", "tiny-random-llama", "--json", str(tmp_path / "missing" / "out.json"), timeout=60)
    assert res.returncode == 2 and "does not exist" in res.stderr and "loading" not in res.stderr


def test_bench_records_a_failing_prompt_and_keeps_the_rest(tmp_path):
    prompts = tmp_path / "p.jsonl"
    rows = [{"id": "ok", "prompt": "Name a river", "category": "c"}, {"id": "long", "prompt": "word " * 2100}]
    prompts.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out.json"
    res = cli(
        "--prompts",
        str(prompts),
        "--methods",
        "ar",
        "--max-new-tokens",
        "4",
        "--model",
        "tiny-random-llama",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["methods"]["ar"]["prompts"] == 1 and data["methods"]["ar"]["failed"] == 1
    assert [r["id"] for r in data["runs"] if "failed" in r] == ["long"]
    assert "failed: ar on long" in res.stderr and "context holds" in res.stderr


def test_bench_says_which_options_a_method_ignores(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Name a river"}))
    out = tmp_path / "out.json"
    res = cli(
        "--prompts",
        str(prompts),
        "--methods",
        "ar,pld",
        "--k",
        "3",
        "--max-new-tokens",
        "4",
        "--model",
        "tiny-random-llama",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "pld does not take --k" in res.stderr
    assert json.loads(out.read_text())["ignored_options"]["pld"] == ["k"]


def test_hf_sampling_in_two_sessions_at_once_gives_each_seed_its_own_output(tiny):
    def hf(seed):
        gen = GenerationConfig(12, SamplingConfig(1.0, seed=seed))
        return summarize(run(tiny, "hf", "Tell me a story", gen)).output_ids

    alone = {seed: hf(seed) for seed in (1, 2)}
    assert alone[1] != alone[2]
    together: dict[int, list[int]] = {}
    threads = [threading.Thread(target=lambda s=s: together.__setitem__(s, hf(s))) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_an_abandoned_hf_run_stops_generating(tiny):
    events = METHODS["hf"].run(tiny, "Tell me a long story", GenerationConfig(1500, SamplingConfig(1.0, seed=0)))
    for _ in range(4):
        next(events)
    events.close()
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and any(t.name == "hf-generate" for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "hf-generate" for t in threading.enumerate())


def test_spechub_with_k_3_is_refused_at_temperature_0_too(tiny):
    with pytest.raises(ValueError, match="k = 2"):
        run(tiny, "spechub", "Hi", GenerationConfig(4), k=3, layer=2)


@pytest.mark.parametrize("name", ["spec", "speed", "bpd-neural", "sgd"])
def test_default_layers_fit_a_smaller_model(tiny, name):
    """The tiny model has 4 layers: the default exit layer (8) is fitted, not an error; sgd's default pool is the
    full model alone (layer 0), whatever the model."""
    events = run(tiny, name, "Name three rivers and a lake", GenerationConfig(9))
    assert isinstance(events[-1], RunFinished)
    layer = events[0].config["layer"]
    assert layer == 0 if name == "sgd" else 1 <= layer < 4


def test_skeleton_titles_may_hold_a_bar_and_are_cut_when_huge():
    sk = parse_skeleton("1. Pros | cons\n2. Costs | depends on: 1 | difficulty: 2\n3. " + "x" * 10_000, graph=True)
    assert [p.title for p in sk.points][:2] == ["Pros | cons", "Costs"]
    assert len(sk.points) == 3 and len(sk.points[2].title) <= MAX_TITLE_CHARS + 1
    assert any("10,000 characters" in w for w in sk.warnings)


@pytest.mark.parametrize("name", ["sot", "sgd"])
def test_skeleton_answers_stay_within_max_new_tokens(tiny, name):
    events = run(tiny, name, "Compare cats and dogs as pets", GenerationConfig(8))
    m = summarize(events)
    assert sum(len(e.token_ids) for e in events if isinstance(e, StepCommitted)) <= 8
    assert m.extras["nodes"] >= 3 or any("fewer than 3" in getattr(e, "message", "") for e in events)


def test_a_skeleton_point_budget_over_the_share_is_capped_with_a_notice(tiny):
    gen = GenerationConfig(12)
    skeleton = "1. A\n2. B\n3. C"
    events = run(tiny, "sot", "Compare cats and dogs", gen, skeleton=skeleton, point_tokens=10)
    assert any("capped at 4" in getattr(e, "message", "") for e in events)
    assert sum(len(e.token_ids) for e in events if isinstance(e, StepCommitted)) <= 12


def test_a_question_too_long_for_the_skeleton_says_so_in_the_users_terms(tiny):
    with pytest.raises(ValueError, match="too long to write a skeleton") as info:
        run(tiny, "sot", "word " * 1850, GenerationConfig(8))
    assert "340 new tokens are asked for" not in str(info.value)


def trace_text(**changes):
    events = [
        RunStarted("ar", "m", "cpu", "float32", "hi", [1, 2]),
        StepCommitted(1, [3], ["a"], 0.1, 0.1),
        RunFinished([3], "a", 0.2, "eos"),
    ]
    data = json.loads(dumps(events))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    "text, words",
    [
        (b"\xff\xfe\x00junk", "not UTF-8"),
        (trace_text(events=[]), "does not start with a 'run_started'"),
        (trace_text(version=7), "version is 7"),
        (trace_text(events=[1, 2]), "an event is int"),
        (trace_text().replace('"prompt_ids": [1, 2]', '"prompt_ids": 5'), "'prompt_ids' of a 'run_started' event"),
        (trace_text().replace('"t": 0.1', '"t": "soon"'), "'t' of a 'step' event"),
    ],
)
def test_junk_traces_get_one_sentence_in_the_users_terms(text, words):
    with pytest.raises(ValueError, match="not a Decoding Lab trace") as info:
        loads(text)
    assert words in str(info.value)


def test_a_good_trace_still_loads():
    assert len(loads(trace_text())) == 3


def test_a_cancelled_run_closes_its_generator_and_errors_reach_the_consumer():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield "event"
                time.sleep(0.01)
        finally:
            closed.set()

    worker = RunThread(endless())
    assert worker.drain(timeout=5)
    worker.cancel()
    assert closed.wait(5)

    def broken():
        yield "first"
        raise ValueError("the method failed")

    events = []
    with pytest.raises(ValueError, match="the method failed"):
        for ev in RunThread(broken()):
            events.append(ev)
    assert events == ["first"]


def test_a_lattice_too_large_to_rescore_is_refused_before_any_work(tiny):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="4,294,967,296 paths per step, over the limit of 4,096"):
        run(tiny, "bpd-ngram", "Hi", GenerationConfig(4), block=9, topk=16)
    assert time.perf_counter() - t0 < 5
