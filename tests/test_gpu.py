"""GPU checks of the decoding core (skipped without CUDA). On the lent machine, with the embedded model unpacked
there (README, "On a GPU"; tools/gpu_report.sh runs them first):

    python -m pytest tests/test_gpu.py -s

Engine logits against transformers (float32), graph replay against the eager forward, ``ar`` against
transformers' greedy generate, every lossless method identical to ``ar`` at T = 0 in float32, the
synchronisations per step (``torch.cuda.set_sync_debug_mode``: ar one a token, a speculative step at most
two), graphs captured once across runs, the compiled AR step against the captured one, and the bfloat16 drift
(how many prompts stay identical to bfloat16 ``ar``), reported, not asserted."""

import os
import warnings

import pytest
import torch

from core.config import GenerationConfig, ModelSpec, SamplingConfig
from core.engine import graph
from core.engine.graph import BUILDS, GraphEngine
from core.sampling import Sampler, make_generator
from core.engine.llama import LlamaEngine
from core.metrics import summarize
from core.models import load_model
from core.prompts import load_prompts
from core.registry import METHODS
from core.speculative.tree import TreeTopology

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODEL = os.environ.get("DECODING_LAB_GPU_MODEL", "embedded")
LOSSLESS = [name for name, m in METHODS.items() if m.lossless and name not in ("ar", "hf-assisted")]
GEN = GenerationConfig(32)


@pytest.fixture(scope="module")
def gpu32():
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32: identical tokens are asserted
    return load_model(ModelSpec(MODEL, device="cuda", dtype="float32"))


@pytest.fixture(scope="module")
def prompts():
    return [p.prompt for p in load_prompts()[::13]]


def answer(model, name, prompt, gen=GEN):
    return summarize(list(METHODS[name].run(model, prompt, gen))).output_ids


def ids(n, vocab, seed=1):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed)).cuda()


def test_engine_logits_match_transformers(gpu32):
    x = ids(40, gpu32.config.vocab_size)
    with torch.no_grad():
        ref = gpu32.model(x).logits.float()
    for engine in (LlamaEngine(gpu32.model, max_len=64), GraphEngine(gpu32.model, max_len=64)):
        outs = [engine.forward(x[:, :30]).logits]
        engine.commit(30)
        for i in range(30, 40):
            outs.append(engine.forward(x[:, i : i + 1]).logits)
            engine.commit(1)
        torch.testing.assert_close(torch.cat(outs, 1), ref, atol=2e-3, rtol=0)


def test_graph_replay_equals_the_eager_forward(gpu32):
    eager, graph = LlamaEngine(gpu32.model, max_len=128), GraphEngine(gpu32.model, max_len=128)
    assert graph.capture and graph.device.type == "cuda"
    x = ids(50, gpu32.config.vocab_size)
    topo = TreeTopology.full(2, 2)
    for engine in (eager, graph):
        engine.forward(x[:, :20])
        engine.commit(20)
    for i in range(20, 26):  # the first step of a bucket captures, the next ones replay
        a, b = eager.forward(x[:, i : i + 1]), graph.forward(x[:, i : i + 1])
        torch.testing.assert_close(b.logits, a.logits, atol=1e-4, rtol=0)
        eager.commit(1)
        graph.commit(1)
    offsets = torch.tensor([topo.node_depth], device="cuda")
    mask = topo.mask.cuda()
    for _ in range(2):
        a = eager.forward(x[:, 30:37], tree_mask=mask, offsets=offsets)
        b = graph.forward(x[:, 30:37], tree_mask=mask, offsets=offsets)
        torch.testing.assert_close(b.logits, a.logits, atol=1e-4, rtol=0)
    assert sum(isinstance(s.graph, torch.cuda.CUDAGraph) for s in graph.ws.steps.values()) >= 2


def test_ar_equals_transformers_greedy(gpu32, prompts):
    for prompt in prompts:
        assert answer(gpu32, "ar", prompt) == answer(gpu32, "hf", prompt), prompt


@pytest.mark.parametrize("name", LOSSLESS)
def test_every_lossless_method_is_identical_to_ar_in_float32(gpu32, prompts, name):
    for prompt in prompts:
        assert answer(gpu32, name, prompt) == answer(gpu32, "ar", prompt), (name, prompt)


def test_bfloat16_drift_is_reported(prompts):
    model = load_model(ModelSpec(MODEL, device="cuda", dtype="bfloat16"))
    ar = [answer(model, "ar", p) for p in prompts]
    drift = {name: sum(answer(model, name, p) == a for p, a in zip(prompts, ar, strict=True)) for name in LOSSLESS}
    print("\nbfloat16: prompts identical to bfloat16 ar, of", len(prompts), drift)
    assert set(drift) == set(LOSSLESS) and all(0 <= n <= len(prompts) for n in drift.values())


def synchronisations(fn) -> int:
    """How many times ``fn`` made the host wait for the device (torch's sync debug mode, counted)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in seen)


@pytest.mark.parametrize("name", ["ar", "eagle", "pld", "bpd", "rrs", "spechub", "speed"])
def test_a_step_synchronises_at_most_its_budget(gpu32, prompts, name):
    """ar once a token; a speculative step at most twice; SPEED once a tick (after a warm-up run: graphs captured,
    heads loaded), a few more for the run's end (the device events' totals)."""
    gen = GenerationConfig(32)
    answer(gpu32, name, prompts[0], gen)
    events = []
    count = synchronisations(lambda: events.extend(METHODS[name].run(gpu32, prompts[0], gen)))
    m = summarize(events)
    budget = {"ar": m.tokens, "speed": m.extras.get("ticks", 0)}.get(name, 2 * m.forwards)
    assert count <= budget + 3, (name, count, budget)


def test_graphs_are_captured_once_and_reused_by_the_next_run(gpu32, prompts):
    for name in ("ar", "eagle", "bpd"):
        answer(gpu32, name, prompts[0])
        before = BUILDS.count
        answer(gpu32, name, prompts[0])
        assert BUILDS.count == before, name


def test_the_compiled_step_gives_the_captured_steps_tokens(gpu32):
    x = ids(9, gpu32.config.vocab_size)
    out = []
    for compiled in (False, True):
        graph._POOL.pop(gpu32.model, None)
        engine = GraphEngine(gpu32.model, max_len=64, compiled=compiled)
        sampler = Sampler(SamplingConfig(0.0), make_generator(0, gpu32.device))
        out.append([engine.decode(sampler, x).item()] + [engine.decode(sampler).item() for _ in range(16)])
    assert out[0] == out[1]
