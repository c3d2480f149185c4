"""Every method the registry marks lossless gives ar's exact tokens at T = 0 in float32, on three held-out prompts
of the embedded model (its shipped heads and vocabulary). Driven from ``core.registry.METHODS``: a new lossless
method is covered by listing it there."""

import pytest

from core.config import GenerationConfig
from core.metrics import summarize
from core.prompts import load_prompts, split_prompts
from core.registry import METHODS

TOKENS = 24
LOSSLESS = [name for name, m in METHODS.items() if m.lossless and name != "ar"]


def needs(name: str, embedded) -> dict:
    """Options a method cannot run without (assisted generation needs an assistant: the model itself)."""
    return {"draft_model": embedded} if "draft_model" in METHODS[name].tunable and name.startswith("hf") else {}


@pytest.fixture(scope="module")
def prompts():
    return [p.prompt for p in split_prompts(load_prompts(), "held-out")[:3]]


@pytest.fixture(scope="module")
def ar_ids(embedded, prompts):
    return [summarize(list(METHODS["ar"].run(embedded, p, GenerationConfig(TOKENS)))).output_ids for p in prompts]


def test_the_registry_marks_the_lossless_methods():
    assert {"eagle", "rrs", "spechub", "bpd", "pld", "speed", "hf"} <= set(LOSSLESS)
    assert not {"sot", "sgd"} & set(LOSSLESS)


@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSLESS)
def test_a_lossless_method_gives_ars_exact_tokens(embedded, prompts, ar_ids, name):
    for prompt, want in zip(prompts, ar_ids, strict=True):
        events = list(METHODS[name].run(embedded, prompt, GenerationConfig(TOKENS), **needs(name, embedded)))
        assert summarize(events).output_ids == want, (name, prompt)
