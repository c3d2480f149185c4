"""AR decoding: equal to transformers' greedy generate, sampling reproducible, stops, input errors."""

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.metrics import summarize
from core.prompts import load_prompts
from core.recorder import Recorder
from core.registry import METHODS, get_method
from core.text import InputError, encode_prompt
from core.trace import RunFinished, RunStarted, StepCommitted


def hf_greedy_ids(model, prompt, n):
    ids = encode_prompt(model, prompt, n)
    with torch.no_grad():
        out = model.model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=list(model.eos_ids),
            pad_token_id=model.eos_ids[0],
            temperature=None,
            top_p=None,
            top_k=None,
        )
    return out[0, len(ids) :].tolist()


def run(model, method, prompt, gen):
    return summarize(list(get_method(method).run(model, prompt, gen)))


def test_ar_greedy_equals_transformers_generate_on_tiny_model(tiny):
    gen = GenerationConfig(24)
    for prompt in ("Hello there", "Count to five:"):
        assert run(tiny, "ar", prompt, gen).output_ids == hf_greedy_ids(tiny, prompt, 24)


@pytest.mark.slow
def test_ar_and_hf_greedy_equal_transformers_generate_on_embedded_model(embedded):
    gen = GenerationConfig(32)
    prompts = [p.prompt for p in load_prompts()][::13][:4]
    for prompt in prompts:
        expected = hf_greedy_ids(embedded, prompt, 32)
        assert run(embedded, "ar", prompt, gen).output_ids == expected
        assert run(embedded, "hf", prompt, gen).output_ids == expected


def test_events_stream_one_token_per_step_and_join_to_the_text(tiny):
    events = list(METHODS["ar"].run(tiny, "Say something", GenerationConfig(12)))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    steps = [e for e in events if isinstance(e, StepCommitted)]
    assert [len(s.token_ids) for s in steps] == [1] * len(steps)
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert "".join(t for s in steps for t in s.texts) == events[-1].text
    assert all(b.t >= a.t for a, b in zip(steps, steps[1:], strict=False))
    assert events[0].config["max_new_tokens"] == 12


@pytest.mark.parametrize("method", ["ar", "hf"])
def test_sampling_is_reproducible_per_seed(tiny, method):
    def ids(seed):
        return run(tiny, method, "Once upon a time", GenerationConfig(16, SamplingConfig(1.0, seed=seed))).output_ids

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_recorder_stops_at_eos_and_at_the_token_budget(tiny):
    eos = tiny.eos_ids[0]
    rec = Recorder("x", tiny, "p", [1], GenerationConfig(10))
    step = rec.commit([5, 6, eos, 7], 0.0, drafted=3, accepted=3)
    assert step.token_ids == [5, 6, eos] and rec.stop_reason == "eos"
    rec = Recorder("x", tiny, "p", [1], GenerationConfig(3))
    rec.commit([5, 6], 0.0)
    step = rec.commit([7, 8, 9], 0.0)
    assert step.token_ids == [7] and rec.stop_reason == "max_new_tokens" and rec.output == [5, 6, 7]


def test_bad_prompts_get_clear_messages(tiny):
    with pytest.raises(InputError, match="empty"):
        list(METHODS["ar"].run(tiny, "   ", GenerationConfig(8)))
    with pytest.raises(InputError, match="context holds 2048"):
        list(METHODS["ar"].run(tiny, "word " * 2100, GenerationConfig(8)))
    with pytest.raises(ValueError, match="Unknown method"):
        get_method("nope")


def test_concurrent_runs_on_one_cached_model_do_not_interfere(tiny):
    """Two sessions sharing the cached model each get their own engine and KV cache."""
    import threading

    prompts = ["First session asks this", "The second session asks something else entirely"]
    gen = GenerationConfig(20, SamplingConfig(0.9, seed=11))
    alone = [run(tiny, "ar", p, gen).output_ids for p in prompts]
    together: dict[int, list[int]] = {}
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        together[i] = run(tiny, "ar", prompts[i], gen).output_ids

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [together[0], together[1]] == alone


def test_transformers_speculative_baselines_match_ar_when_greedy(tiny):
    gen = GenerationConfig(16)
    expected = run(tiny, "ar", "Repeat: one two three, one two three", gen).output_ids
    assert run(tiny, "hf-pld", "Repeat: one two three, one two three", gen).output_ids == expected
    events = list(METHODS["hf-assisted"].run(tiny, "Repeat: one two three, one two three", gen, draft_model=tiny))
    assert summarize(events).output_ids == expected and events[0].method == "hf-assisted"
    with pytest.raises(ValueError, match="draft model"):
        list(METHODS["hf-assisted"].run(tiny, "Hi", gen))
