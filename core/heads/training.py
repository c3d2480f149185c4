"""Training small heads on a frozen target by self-distillation (no external data set).

Every generated position of the self-distillation data (``core.heads.data``) gives one example:
the hidden state after layer e (BPD: the last hidden state) as input, and the target's own
distribution p of the token to predict as the soft label. A head minimises KL(p || q_head);
every fifth suite prompt is held out to measure the hit rate (argmax q == argmax p) of the
trained head and of the plain early exit (final norm + LM head at layer e).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from core.heads.corpus import corpus_hidden, corpus_layer_hidden
from core.heads.data import log, self_distilled
from core.metrics import time_left
from core.heads.measure import bpd_head_analysis, hit_rate
from core.heads.modules import HeadInfo, Heads, check_exit_layer, head_logits, lm_projection
from core.models import LoadedModel


@dataclass(frozen=True)
class TrainingConfig:
    """How heads are trained: optimiser steps (per head), batch, learning rate, seed; the self-distillation
    data (continuation length ``tokens``, ``samples`` sampled continuations per training prompt at
    ``temperature``); and the command recorded in the file."""

    steps: int = 300
    batch: int = 256
    lr: float = 2e-3
    seed: int = 0
    tokens: int = 64
    samples: int = 0
    temperature: float = 0.8
    command: str = ""


def train_head(
    model: LoadedModel, head: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, cfg: TrainingConfig
) -> list[float]:
    """Minimise KL(p || q) with p from ``targets`` (final hidden states), q from the head on ``inputs``."""
    head = head.to(model.device, torch.float32).train().requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = torch.Generator().manual_seed(cfg.seed)
    project, losses = lm_projection(model.model), []
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(inputs), (cfg.batch,), generator=rng)
        with torch.no_grad():
            log_p = torch.log_softmax(head_logits(project, None, targets[idx].to(model.device, model.dtype)), -1)
        h = head(inputs[idx].to(model.device, torch.float32)).to(model.dtype)
        log_q = torch.log_softmax(head_logits(project, None, h), -1)
        loss = torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 5))
        if step % 20 == 0 or step == cfg.steps:
            recent = losses[-20:]
            spent = time.perf_counter() - t0
            log(f"  step {step}/{cfg.steps}  KL {sum(recent) / len(recent):.4f}  ({spent:.0f} s, {time_left(step, cfg.steps, spent)})")
    head.eval().requires_grad_(False)
    return losses


def new_heads(model: LoadedModel, kind: str, layer: int, count: int, cfg: TrainingConfig) -> Heads:
    """``count`` fresh heads, their random init seeded (scoped) from ``cfg.seed``, with the file's record."""
    info = HeadInfo(kind, model.key, layer, count, model.config.hidden_size, cfg.command, cfg.seed, cfg.steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return Heads.new(info)


def train_exit_head(
    model: LoadedModel, layer: int, cfg: TrainingConfig, data: str = "suite", sequences: int = 0
) -> Heads:
    """An exit head at layer e: reads h_e and learns the model's own next-token distribution p_{t+1}.
    ``data``: "suite", the continuations of the suite's training prompts (the head learns their wording: as
    SGD's cheap member it wrote about renting a home in answers about a bakery); "corpus", ``sequences``
    sequences of the self-distillation corpus spread over it (0: all). The suite's held-out prompts measure it."""
    check_exit_layer(model.config.num_hidden_layers, layer)
    if data not in ("suite", "corpus"):
        raise ValueError(f"--data is suite or corpus, got {data!r}.")
    suite = self_distilled(model, cfg.tokens, cfg.samples if data == "suite" else 0, cfg.temperature, (layer,))
    source = corpus_layer_hidden(model, layer, sequences) if data == "corpus" else suite
    train, held = ~source.held_out & source.generated, suite.held_out & suite.generated
    log(f"  {int(train.sum())} training positions, {int(held.sum())} held out")
    heads = new_heads(model, "exit", layer, 1, cfg)
    plain = hit_rate(model, None, suite.by_layer[layer][held], suite.final[held])
    heads.info.losses = train_head(model, heads.heads[0], source.by_layer[layer][train], source.final[train], cfg)
    trained = hit_rate(model, heads.heads[0], suite.by_layer[layer][held], suite.final[held])
    heads.info.metrics = {
        "held_out_hit_rate": trained,
        "plain_exit_hit_rate": plain,
        "train_positions": int(train.sum()),
        "held_out_positions": int(held.sum()),
        "data": data,
        "corpus_sequences": sequences if data == "corpus" else None,
    }
    log(f"held-out hit rate at layer {layer}: trained head {trained:.3f}, plain early exit {plain:.3f}")
    return heads


def train_bpd_heads(model: LoadedModel, k: int, cfg: TrainingConfig, data: str = "suite") -> Heads:
    """k - 1 BPD heads; head i reads h_t and learns p_{t+i}, the model's own distribution of token t+1+i.
    ``data``: "suite", the greedy continuations of the suite's training prompts plus ``samples`` sampled ones
    each; "corpus", the self-distillation corpus (``core.heads.corpus``). Either way the suite's held-out
    prompts measure them."""
    if not 2 <= k <= 9:
        raise ValueError(f"--k must be between 2 and 9 (the block size: base + k - 1 heads), got {k}.")
    if data not in ("suite", "corpus"):
        raise ValueError(f"--data is suite or corpus, got {data!r}.")
    suite = self_distilled(model, cfg.tokens, cfg.samples if data == "suite" else 0, cfg.temperature, ())
    source = corpus_hidden(model) if data == "corpus" else suite
    heads = new_heads(model, "bpd", model.config.num_hidden_layers, k - 1, cfg)
    accuracy = []
    for i, head in enumerate(heads.heads, start=1):
        train = source.offset_pairs(i, ~source.held_out & source.generated)
        held = suite.offset_pairs(i, suite.held_out & suite.generated)
        log(f"head {i} (predicts token t+{i + 1}): {len(train)} training pairs, {len(held)} held out")
        per_head = replace(cfg, seed=cfg.seed + i)
        heads.info.losses += train_head(model, head, source.final[train], source.final[train + i], per_head)
        accuracy.append(hit_rate(model, head, suite.final[held], suite.final[held + i]))
        log(f"  head {i}: held-out top-1 agreement with the model {accuracy[-1]:.3f}")
    heads.info.metrics = {
        "held_out_top1_per_head": accuracy,
        "data": data,
        **bpd_head_analysis(model, heads, suite),
    }
    return heads
