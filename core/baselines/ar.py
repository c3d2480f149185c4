"""Autoregressive decoding (docs/methods.md, "Autoregressive"): one target forward per token.

p_t = softmax(f(x_<t) / T), filtered by top-k / top-p; x_t = argmax p_t at T = 0,
else x_t ~ p_t drawn with an explicit torch.Generator seeded from the config.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from core.config import GenerationConfig
from core.engine import make_engine
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import make_generator, next_token
from core.text import encode_prompt


@excluding_consumer_time
def run_ar(model: LoadedModel, prompt: str, gen: GenerationConfig) -> Iterator:
    """Yield RunStarted, one StepCommitted per token, RunFinished."""
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    rec = Recorder("ar", model, prompt, prompt_ids, gen)
    yield rec.started()
    engine = make_engine(model, batch=1, max_len=len(prompt_ids) + gen.max_new_tokens)
    rng = make_generator(gen.sampling.seed, model.device)
    tokens = torch.tensor([prompt_ids], device=model.device)
    while not rec.done:
        t0 = time.perf_counter()
        logits = engine.forward(tokens, last_only=True).logits[0, -1]  # [V]
        engine.commit(tokens.shape[1])
        tok = next_token(logits, gen.sampling, rng)
        yield rec.commit([tok], time.perf_counter() - t0)
        tokens = torch.tensor([[tok]], device=model.device)
    yield rec.finished()
