"""Self-distillation data: the target's own continuations of the suite's prompts and their hidden states.

Greedy continuations of every suite prompt, plus optionally ``samples`` sampled ones of each
*training* prompt (every fifth suite prompt is held out), cached under
``$DECODING_LAB_CACHE/distill``. ``collect_hidden`` gives, per position, the hidden state after
the requested layers and the last one, which sequence it belongs to, whether it is held out, and
whether it can draft generated text (the chat template's fixed system prompt would otherwise be
memorised by a head).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from core.config import SamplingConfig
from core.engine import make_engine, require
from core.engine.rows import WholeModel, decode_rows
from core.models import LoadedModel, cache_root
from core.prompts import is_held_out, load_prompts
from core.text import encode_prompt


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def distill_sequences(model: LoadedModel, max_new_tokens: int = 64) -> list[list[int]]:
    """prompt ids + the model's greedy continuation, for every suite prompt (cached on disk)."""
    path = cache_root() / "distill" / f"{model.key}-{max_new_tokens}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    prompts = load_prompts()
    seqs = []
    t0 = time.perf_counter()
    for i, p in enumerate(prompts, 1):
        ids = encode_prompt(model, p.prompt, max_new_tokens)
        steps = decode_rows(WholeModel(model), [ids], [max_new_tokens], SamplingConfig(0.0), torch.Generator())
        seqs.append(ids + [step[0].token for step in steps])  # as ``ar`` writes it: up to its EOS, which it keeps
        log(f"  self-distillation data: {i}/{len(prompts)} continuations ({time.perf_counter() - t0:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seqs, path)
    return seqs


def sampled_sequences(model: LoadedModel, max_new_tokens: int, samples: int, temperature: float) -> list[list[int]]:
    """``samples`` sampled continuations (at ``temperature``) of every *training* prompt of the suite, each
    prompt's samples decoded as one batch (cached on disk). More of the model's own text for the heads to
    learn from; the held-out prompts get none, so held-out figures stay held out."""
    path = cache_root() / "distill" / f"{model.key}-{max_new_tokens}-s{samples}-T{temperature}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    seqs, t0 = [], time.perf_counter()
    member = WholeModel(model)
    for i, p in enumerate(load_prompts()):
        if is_held_out(i):
            continue
        ids = encode_prompt(model, p.prompt, max_new_tokens)
        rows: list[list[int]] = [[] for _ in range(samples)]
        rng = torch.Generator(device=model.device).manual_seed(i)
        for step in decode_rows(member, [ids] * samples, [max_new_tokens] * samples, SamplingConfig(temperature), rng):
            for r in step:
                rows[r.row].append(r.token)
        seqs += [ids + row for row in rows]
        log(f"  sampled continuations: prompt {i + 1}/{len(load_prompts())} ({time.perf_counter() - t0:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seqs, path)
    return seqs


def self_distilled(model: LoadedModel, tokens: int, samples: int, temperature: float, layers: tuple[int, ...]):
    """Hidden states of the greedy continuations of the suite plus ``samples`` sampled ones per training prompt."""
    log("collecting self-distillation data")
    extra = sampled_sequences(model, tokens, samples, temperature) if samples else []
    return collect_hidden(model, distill_sequences(model, tokens), layers, extra)


@dataclass
class HiddenSet:
    """Per position: the hidden state after each requested layer, the final hidden state, and the split."""

    by_layer: dict[int, torch.Tensor]  # layer -> [N, H]
    final: torch.Tensor  # [N, H] (before the final norm)
    held_out: torch.Tensor  # [N] bool
    seq: torch.Tensor  # [N] which sequence each position belongs to
    generated: torch.Tensor  # [N] bool: the hidden state can draft generated text (from the prompt's second-last
    # token on); the chat template's fixed system prompt would otherwise teach the heads to recite it

    def offset_pairs(self, i: int, mask: torch.Tensor) -> torch.Tensor:
        """Positions j (where ``mask``) whose position j + i is in the same sequence."""
        j = torch.arange(len(self.seq) - i)
        keep = (self.seq[j] == self.seq[j + i]) & mask[j]
        return j[keep]


@torch.inference_mode()
def collect_hidden(
    model: LoadedModel, seqs: list[list[int]], layers: tuple[int, ...], extra: list[list[int]] = ()
) -> HiddenSet:
    """Hidden states of every position of ``seqs`` (suite order: every fifth held out) and of ``extra``
    sequences (training only)."""
    require(type(make_engine(model, max_len=1)), "supports_layer_ranges", "Collecting hidden states")
    by_layer: dict[int, list] = {e: [] for e in layers}
    final, held, which, generated = [], [], [], []
    starts = prompt_lengths(model)
    for i, seq in enumerate([*seqs, *extra]):
        engine = make_engine(model, max_len=len(seq))
        out = engine.forward(torch.tensor([seq], device=model.device), output_hidden=layers)
        for e in layers:
            by_layer[e].append(out.hidden[e][0].float().cpu())
        final.append(out.last_hidden[0].float().cpu())
        held.append(torch.full((len(seq),), i < len(seqs) and is_held_out(i)))
        which.append(torch.full((len(seq),), i))
        start = starts[i] if i < len(seqs) else starts[extra_prompt(i - len(seqs), len(extra), starts)]
        generated.append(torch.arange(len(seq)) >= start - 2)
    return HiddenSet(
        {e: torch.cat(v) for e, v in by_layer.items()},
        torch.cat(final),
        torch.cat(held),
        torch.cat(which),
        torch.cat(generated),
    )


def prompt_lengths(model: LoadedModel) -> list[int]:
    """Tokens of each suite prompt (chat template included): where its continuation starts."""
    return [len(encode_prompt(model, p.prompt, 0)) for p in load_prompts()]


def extra_prompt(j: int, count: int, starts: list[int]) -> int:
    """The suite index of sampled sequence j of ``count`` (the training prompts in order, equally many each)."""
    train = [i for i in range(len(starts)) if not is_held_out(i)]
    return train[j // max(count // len(train), 1)]
