"""SPEED: speculative pipelined execution with early-exit speculation (docs/methods.md, "SPEED").

The decoder layers are split at boundaries 0 = b_0 < b_1 < ... < b_S = L. In each tick,
every token in flight advances one stage (an engine forward over its layer range at
its own KV slot). A token leaving stage 1 is read by the exit head at layer b_1, whose
argmax guess y^_{t+1} enters stage 1 in the next tick. A token leaving stage S gives
the model's real next token x_{t+1} (argmax, or a draw from p with the run's
generator, exactly as ``ar`` draws it). If x_{t+1} == y^_{t+1} the work already done on
it is kept (a hit); otherwise every token behind is flushed and x_{t+1} enters stage
1. Flushed slots need no explicit rollback: tokens flow in slot order, so every layer
of a slot is rewritten before a later token reads it. Output equals ``ar``'s, token for
token, at every temperature with the same seed (the same draws, in the same order).

On a standard decoder the stages of a tick run one after another here, so a tick costs
about a full forward; ``parameter_shared_model`` gives, labelled as a model, the tick
time a parameter-shared decoder would get by running the tokens in flight as one batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.config import GenerationConfig
from core.engine import Engine, make_engine, prefill, require
from core.heads import check_exit_layer, fitted_exit_layer, head_logits, load_exit_head
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.engine.sync import host, upload
from core.sampling import Sampler, make_generator
from core.text import encode_prompt
from core.trace import PipelineTick


@dataclass
class InFlight:
    token: int
    slot: int
    stage: int  # stages completed
    speculative: bool
    hidden: torch.Tensor | None = None  # [1, 1, H] after its last completed stage


def tick_read(guess: torch.Tensor | None, committed: torch.Tensor | None) -> tuple[int | None, int | None]:
    """The exit head's guess and the token leaving the pipe, each a 0-d tensor or None, in one read."""
    known = [x for x in (guess, committed) if x is not None]
    values = iter(host(torch.stack(known))) if known else iter(())
    return tuple(None if x is None else next(values) for x in (guess, committed))


def stage_bounds(n_layers: int, exit_layer: int, stages: int) -> list[int]:
    """b_0 = 0, b_1 = exit layer, the rest of the layers split evenly into stages - 1 parts."""
    if stages < 2:
        raise ValueError("A pipeline needs at least 2 stages.")
    check_exit_layer(n_layers, exit_layer)
    rest = n_layers - exit_layer
    if rest < stages - 1:
        raise ValueError(f"{stages} stages do not fit: only {rest} layers follow the exit layer {exit_layer}.")
    return [0, exit_layer] + [exit_layer + round(rest * i / (stages - 1)) for i in range(1, stages)]


@excluding_consumer_time
def run_speed(
    model: LoadedModel, prompt: str, gen: GenerationConfig, *, layer: int | None = None, stages: int = 2
) -> Iterator:
    """Yield RunStarted, per tick a PipelineTick (and a StepCommitted when a token leaves the pipe), RunFinished."""
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    layer = fitted_exit_layer(model.config.num_hidden_layers, layer)
    rec = Recorder("speed", model, prompt, prompt_ids, gen, options={"layer": layer, "stages": stages})
    yield rec.started()
    engine = make_engine(model, batch=1, max_len=len(prompt_ids) + gen.max_new_tokens + stages + 1)
    require(type(engine), "supports_layer_ranges", "SPEED's pipeline stages")
    bounds = stage_bounds(engine.n_layers, layer, stages)
    head, notice = load_exit_head(model, layer)
    if notice:
        yield rec.notice(notice)
    sampler = Sampler(gen.sampling, make_generator(gen.sampling.seed, model.device))
    device = model.device
    prefill(engine, prompt_ids)
    pipe = [InFlight(prompt_ids[-1], len(prompt_ids) - 1, 0, False)]
    tick = hits = flushes = 0
    while not rec.done:
        tick += 1
        t_start = rec.now()
        t0 = time.perf_counter()
        guess, committed, hit, flushed = None, None, None, []
        for item in list(pipe):  # oldest (deepest) first
            s = item.stage
            out = engine.forward(
                upload([[item.token]], device) if s == 0 else None,
                hidden_in=item.hidden,
                start=item.slot,
                offsets=torch.full((1, 1), item.slot - engine.length, device=device),
                layers=range(bounds[s], bounds[s + 1]),
                last_only=True,
            )
            item.stage, item.hidden = s + 1, out.last_hidden
            if s == 0:
                guess = head_logits(engine.logits, head, out.last_hidden)[0, -1].argmax()
            if item.stage == stages:
                sampler.refill(engine.uniform)
                committed = sampler.choose(out.logits[0, -1:], engine.uniform)[0]
        guess, committed = tick_read(guess, committed)  # the tick's one read
        with rec.bookkeeping():
            snapshot = [("", -1, False)] * stages
            for item in pipe:
                snapshot[item.stage - 1] = (model.tokenizer.decode([item.token]), item.slot, item.speculative)
        if committed is not None:
            done = pipe.pop(0)
            engine.commit(1)
            if pipe and pipe[0].token == committed:
                hit = True
                pipe[0].speculative = False
            else:
                hit = False if pipe else None
                flushed = [p.token for p in pipe]
                pipe = [InFlight(committed, done.slot + 1, 0, False)]
                guess = None
        if guess is not None and len(pipe) < stages:
            pipe.append(InFlight(guess, pipe[-1].slot + 1, 0, True))
        elapsed = time.perf_counter() - t0
        with rec.bookkeeping():
            event = PipelineTick(
                tick=tick,
                start=t_start,
                end=rec.clock.now(),
                stage_texts=[x[0] for x in snapshot],
                stage_slots=[x[1] for x in snapshot],
                stage_speculative=[x[2] for x in snapshot],
                committed_text=model.tokenizer.decode([committed]) if committed is not None else "",
                hit=hit,
                flushed=[model.tokenizer.decode([x]) for x in flushed],
                t=rec.clock.now(),
            )
        yield event
        if committed is not None:
            yield rec.commit([committed], elapsed, drafted=1 if hit is not None else 0, accepted=1 if hit else 0)
        hits += bool(hit)
        flushes += bool(flushed)
    with rec.bookkeeping():  # a measurement for the model below, not decoding
        costs = stage_costs(engine, bounds[1], stages)
    yield rec.finished(
        extras={
            "ticks": tick,
            "hits": hits,
            "flushes": flushes,
            "stages": stages,
            "exit_layer": layer,
            "layer_ms_1_token": costs[0] * 1000,
            "layer_ms_batched": costs[1] * 1000,
            "modelled_parameter_shared_speedup": parameter_shared_model(costs, stages, len(rec.output), tick),
        }
    )


def stage_costs(engine: Engine, layers: int, n: int, repeats: int = 3) -> tuple[float, float]:
    """Measured seconds per decoder layer for 1 token and for n tokens in one batched call.

    Runs on scratch slots past the committed length (nothing is committed or kept).
    """
    base = engine.length
    h = engine.decoder.embed_tokens(torch.ones(1, n, dtype=torch.long, device=engine.device))
    timings = []
    for width in (1, n):
        best = float("inf")
        for _ in range(repeats):
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            engine.forward(hidden_in=h[:, :width], start=base, layers=range(1, 1 + layers))
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        timings.append(best / max(layers, 1))
    return timings[0], timings[1]  # per layer: 1 token, n tokens batched


def parameter_shared_model(costs: tuple[float, float], stages: int, tokens: int, ticks: int) -> float:
    """Modelled speedup of SPEED on a parameter-shared decoder (a model, not a measurement).

    If every stage reused the same weights, the S tokens in flight would go through them in
    one batched call: a tick would cost c(S) per layer instead of AR's S * c(1) for S layers'
    worth of one token. With the run's measured tokens per tick (hits and flushes included):
        speedup = S * c(1) / c(S) * tokens / ticks.
    """
    c1, cs = costs
    return stages * c1 / cs * tokens / ticks if ticks and cs > 0 else 0.0
