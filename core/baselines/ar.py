"""Autoregressive decoding (docs/methods.md, "Autoregressive"): one target forward per token.

p_t = softmax(f(x_<t) / T), filtered by top-k / top-p; x_t = argmax p_t at T = 0,
else x_t ~ p_t drawn with an explicit torch.Generator seeded from the config.
Each step is the engine's ``decode`` (forward, choice and the next input on the device;
on CUDA one graph replay) and one host read of the token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from core.config import GenerationConfig
from core.engine import make_engine
from core.engine.sync import host, upload
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import Sampler, make_generator
from core.text import encode_prompt


@excluding_consumer_time
def run_ar(model: LoadedModel, prompt: str, gen: GenerationConfig) -> Iterator:
    """Yield RunStarted, one StepCommitted per token, RunFinished."""
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    rec = Recorder("ar", model, prompt, prompt_ids, gen)
    yield rec.started()
    engine = make_engine(model, batch=1, max_len=len(prompt_ids) + gen.max_new_tokens)
    sampler = Sampler(gen.sampling, make_generator(gen.sampling.seed, model.device))
    t0 = time.perf_counter()
    token = engine.decode(sampler, upload([prompt_ids], model.device))  # the prompt and the first token
    while True:
        yield rec.commit(host(token), time.perf_counter() - t0)  # the step's one read
        if rec.done:
            break
        t0 = time.perf_counter()
        token = engine.decode(sampler)
    yield rec.finished()
