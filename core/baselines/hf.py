"""The reference baseline: transformers' own ``generate``, recorded in the same trace format.

``generate`` runs in a worker thread; a streamer timestamps each token as it is
produced and hands it to this generator. transformers samples with the global torch
RNG, so the seed is applied inside ``torch.random.fork_rng`` (scoped, restored after) and
sampling runs hold ``SAMPLING_LOCK``: two sessions sampling at once would otherwise draw from
one generator and get outputs their seeds do not give alone. When this generator is closed
before the end (its consumer has gone), a stopping criterion ends ``generate`` at its next token.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from core.config import GenerationConfig
from core.models import LoadedModel
from core.recorder import Recorder
from core.text import encode_prompt

_DONE = object()
SAMPLING_LOCK = threading.Lock()


class _StopWhen(StoppingCriteria):
    """Ends ``generate`` once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _QueueStreamer(BaseStreamer):
    """Receives the prompt once, then each new token; forwards new tokens with their arrival time."""

    def __init__(self, out: queue.Queue) -> None:
        self.out, self.prompt_seen = out, False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.out.put((value.reshape(-1).tolist(), time.perf_counter()))

    def end(self) -> None:
        self.out.put(_DONE)


def generate_kwargs(model: LoadedModel, gen: GenerationConfig) -> dict:
    s = gen.sampling
    kwargs = dict(
        max_new_tokens=gen.max_new_tokens,
        eos_token_id=list(model.eos_ids),
        pad_token_id=model.eos_ids[0],
        do_sample=not s.greedy,
    )
    if s.greedy:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    else:
        kwargs.update(temperature=s.temperature, top_k=s.top_k or None, top_p=s.top_p)
    return kwargs


def run_hf(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str = "hf",
    draft_model: LoadedModel | None = None,
    **generate_options,
) -> Iterator:
    """Yield the same events as ``run_ar`` for ``model.generate`` (extra options go to generate).

    ``draft_model`` makes it transformers' assisted generation with that assistant.
    """
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    rec = Recorder(name, model, prompt, prompt_ids, gen, options=dict(generate_options))
    if name == "hf-assisted":
        if draft_model is None:
            raise ValueError("hf-assisted is transformers' assisted generation: give it a draft model (--draft-model).")
        generate_options["assistant_model"] = draft_model.model
    yield rec.started()
    tokens: queue.Queue = queue.Queue()
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            with SAMPLING_LOCK if not gen.sampling.greedy else contextlib.nullcontext():
                with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
                    torch.manual_seed(gen.sampling.seed)
                    model.model.generate(
                        torch.tensor([prompt_ids], device=model.device),
                        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long, device=model.device),
                        streamer=_QueueStreamer(tokens),
                        stopping_criteria=StoppingCriteriaList([_StopWhen(stop)]),
                        **generate_kwargs(model, gen),
                        **generate_options,
                    )
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)
            tokens.put(_DONE)

    worker = threading.Thread(target=work, name="hf-generate", daemon=True)
    worker.start()
    try:
        last = time.perf_counter()
        while (item := tokens.get()) is not _DONE:
            ids, at = item
            if not rec.done:
                yield rec.commit(ids, at - last, at=at)
            last = at
    finally:
        stop.set()  # a consumer that closes this generator early ends generate() too
    worker.join()
    if errors:
        raise errors[0]
    yield rec.finished()
