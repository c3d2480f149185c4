"""Training the feature-level draft head (``core.eagle.head``) on the self-distillation corpus.

Per corpus sequence x_0..x_{T-1} with the target's features f_0..f_{T-2} (captured while the corpus
was decoded), the inputs are the pairs (f_i, x_{i+1}) and the targets the next features f_{i+1}:
    L_1 = CE(p_target, q_draft) + w_reg * SmoothL1(Norm(f^_{i+1}), Norm(f_{i+1}))
where p_target is the target's distribution at f_{i+1} over the reduced vocabulary (soft labels),
q_draft the head's, and Norm the target's frozen final norm (so the regression is measured where
the LM head reads it, not in the raw residual stream with its outlier dimensions). Only positions
that predict answer tokens count (i + 2 >= prompt length). Inputs get Gaussian noise (EAGLE) so
the head tolerates imperfect features.

Second draft position (EAGLE-3's training-time test): a draft tree's depth-1 node feeds the head its
own f^_{i+1} with the drafted token x_{i+2}, at position i + 1, seeing the true pairs 0..i and itself.
Training runs that second pass too, on the first pass's outputs, so the head learns to read its own
features: L = L_1 + w_2 * L_2, with L_2 the same loss for f^_{i+2} against f_{i+2}.

Held-out agreement: on the suite's held-out prompts' greedy continuations (never in the corpus),
the share of answer positions where the head's top-1 (first draft position, true features) is
the model's own next token, measured through the decoding engine itself.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core.config import SamplingConfig
from core.engine import make_engine
from core.engine.llama import LlamaEngine
from core.engine.rows import WholeModel, decode_rows
from core.heads.corpus import Corpus, corpus_features, load_corpus, task_rounds
from core.heads.data import log
from core.metrics import time_left
from core.eagle.head import FeatureHead, load_feature_head
from core.heads.modules import HeadInfo
from core.heads.vocab import DraftVocab, reduced_projection
from core.models import LoadedModel
from core.prompts import is_held_out, load_prompts
from core.text import encode_prompt


@dataclass
class FeatureTrainingConfig:
    steps: int = 1100
    batch: int = 16  # sequences per step
    lr: float = 3e-3
    w_reg: float = 1.0
    noise: float = 0.05  # std of the input noise, relative to each feature's mean magnitude
    seed: int = 0
    command: str = ""
    init: str = ""  # a head file to continue from ("" = a fresh head)
    w_second: float = 1.0  # weight of the second draft position's loss (0 = first position only, EAGLE-1)
    kinds: tuple[str, ...] = ("greedy", "sampled", "task")  # which corpus answers to train on
    layers: int = 1  # decoder layers of a fresh head (EAGLE: 1)


@dataclass
class Example:
    tokens: torch.Tensor  # [T] x_0..x_{T-1}
    features: torch.Tensor  # [T - 1, H] f_0..f_{T-2} (bfloat16)
    prompt_length: int


def corpus_examples(model: LoadedModel, corpus: Corpus) -> list[Example]:
    """Every corpus sequence with its features (``corpus_features``)."""
    return [
        Example(torch.tensor(s), f, n)
        for s, f, n in zip(corpus.seqs, corpus_features(model, corpus), corpus.prompt_lengths, strict=True)
        if len(s) >= 4 and len(f) == len(s) - 1
    ]


def _batch(examples: list[Example], device) -> tuple[torch.Tensor, ...]:
    """Right-padded (features in, next tokens, target features, loss mask), n = T - 2 pairs per example."""
    n = max(len(e.tokens) - 2 for e in examples)
    H = examples[0].features.shape[1]
    f_in = torch.zeros(len(examples), n, H)
    f_out = torch.zeros(len(examples), n, H)
    nxt = torch.zeros(len(examples), n, dtype=torch.long)
    mask = torch.zeros(len(examples), n, dtype=torch.bool)
    for b, e in enumerate(examples):
        m = len(e.tokens) - 2
        f_in[b, :m] = e.features[:m].float()
        f_out[b, :m] = e.features[1 : m + 1].float()
        nxt[b, :m] = e.tokens[1 : m + 1]
        mask[b, :m] = torch.arange(m) + 2 >= e.prompt_length
    return f_in.to(device), nxt.to(device), f_out.to(device), mask.to(device)


def second_pass_mask(n: int, device) -> torch.Tensor:
    """[n - 1, 2n - 1] over slots 0..2n-2: the second pass's query i (the pair (f^_{i+1}, x_{i+2}) at slot
    n + i) sees the first pass's true pairs in slots 0..i and itself, as a depth-1 tree node sees the
    committed context and itself."""
    mask = torch.ones(n - 1, 2 * n - 1, dtype=torch.bool, device=device).tril()
    mask[:, n:] = torch.eye(n - 1, dtype=torch.bool, device=device)
    return mask


def draft_two_positions(head: FeatureHead, engine: LlamaEngine, f: torch.Tensor, x: torch.Tensor, embed):
    """(f^_{i+1} [B, n, H], f^_{i+2} [B, n - 1, H]) from true features f_0..f_{n-1} [B, n, H] and the tokens
    x_1..x_n [B, n]: the first draft position from (f_i, x_{i+1}) at position i, the second from the head's
    own (f^_{i+1}, x_{i+2}) at position i + 1 (a fresh engine: nothing committed)."""
    B, n, _ = f.shape
    positions = torch.arange(n, device=f.device)[None].expand(B, n)
    first, _ = engine.run_layers(head.fuse(f, embed(x)), positions, 0, head.layers)
    second, _ = engine.run_layers(
        head.fuse(first[:, :-1], embed(x[:, 1:n])), positions[:, 1:n], n, head.layers, second_pass_mask(n, f.device)
    )
    return first, second


def _position_loss(pred: torch.Tensor, true: torch.Tensor, w: torch.Tensor, cfg: FeatureTrainingConfig, norm):
    """(loss, cross-entropy, top-1 agreement) of predicted features against true ones (both pre-norm, [M, H])."""
    pred = norm(pred)
    with torch.no_grad():
        true = norm(true)
        p = torch.softmax(F.linear(true, w), -1)
    logq = torch.log_softmax(F.linear(pred, w), -1)
    ce = -(p * logq).sum(-1).mean()
    agree = (logq.argmax(-1) == p.argmax(-1)).float().mean()
    return ce + cfg.w_reg * F.smooth_l1_loss(pred, true), ce, agree


def feature_loss(model: LoadedModel, head: FeatureHead, vocab: DraftVocab, batch, cfg: FeatureTrainingConfig, rng):
    """(loss, first-position cross-entropy, its top-1 agreement, second-position agreement) over one batch's
    masked positions."""
    f_in, nxt, f_out, mask = batch
    net = model.model
    norm, w = net.model.norm, net.lm_head.weight[vocab.ids]
    scale = f_in.abs().mean(-1, keepdim=True)
    noisy = f_in + cfg.noise * scale * torch.randn(f_in.shape, generator=rng, device=f_in.device)
    engine = LlamaEngine(head.net, batch=f_in.shape[0], max_len=2 * f_in.shape[1], trainable=True)
    first, second = draft_two_positions(head, engine, noisy, nxt, net.model.embed_tokens)
    loss, ce, agree = _position_loss(first[mask], f_out[mask], w, cfg, norm)
    mask2 = mask[:, 1:]  # the second position predicts x_{i+3}: a loss position when x_{i+3} is an answer token
    loss2, _, agree2 = _position_loss(second[mask2], f_out[:, 1:][mask2], w, cfg, norm)
    return loss + cfg.w_second * loss2, float(ce.detach()), float(agree), float(agree2)


def lineage(info: HeadInfo) -> dict:
    """How a head that training continues from was made: its command and held-out figures, and the same
    for the head it continued from, back to a fresh start."""
    keys = ("held_out_top1", "held_out_top1_second")
    made = {"command": info.command, **{k: info.metrics[k] for k in keys if k in info.metrics}}
    return {**made, "init": info.metrics["init"]} if "init" in info.metrics else made


def train_feature_head(
    model: LoadedModel, vocab: DraftVocab, cfg: FeatureTrainingConfig
) -> tuple[FeatureHead, HeadInfo]:
    """Train on the corpus (AdamW, cosine decay), log progress, measure held-out agreement."""
    torch.manual_seed(cfg.seed)
    corpus = load_corpus(model.key)
    examples = [
        e for e, kind in zip(corpus_examples(model, corpus), corpus.meta["kinds"], strict=True) if kind in cfg.kinds
    ]
    log(f"  {len(examples)} sequences, {sum(len(e.tokens) for e in examples):,} tokens, N = {vocab.size}")
    head, init = FeatureHead(model.model, cfg.layers).to(model.device), {}
    if cfg.init:
        start, start_info = load_feature_head(model, Path(cfg.init))
        if start_info.layer != cfg.layers:
            raise ValueError(f"{cfg.init} has {start_info.layer} decoder layers, not --layers {cfg.layers}.")
        head.load_state_dict(start.state_dict())
        head.float().train().requires_grad_(True)
        init = {"init": lineage(start_info)}
    else:
        for own, theirs in zip(head.net.model.layers, model.model.model.layers[-cfg.layers :], strict=True):
            own.load_state_dict(theirs.state_dict())  # the target's last layers
        with torch.no_grad():  # and g = f + E x: the residual stream plus the token, not a random mix
            H = model.config.hidden_size
            head.fc.weight.copy_(torch.cat([torch.eye(H), torch.eye(H)], dim=1))
            head.fc.bias.zero_()
    model.model.requires_grad_(False)
    params = [p for n, p in head.named_parameters() if not n.startswith(("net.model.embed", "net.lm_head"))]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
    )
    order, rng = random.Random(cfg.seed), torch.Generator(device=model.device).manual_seed(cfg.seed)
    by_length = sorted(examples, key=lambda e: len(e.tokens))
    chunks = [by_length[i : i + cfg.batch] for i in range(0, len(by_length), cfg.batch)]
    losses, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        loss, ce, agree, agree2 = feature_loss(model, head, vocab, _batch(order.choice(chunks), model.device), cfg, rng)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0 or step == cfg.steps - 1:
            log(
                f"  step {step + 1}/{cfg.steps}: loss {loss:.3f} (first position: ce {ce:.3f}, top-1 {agree:.2f}; "
                f"second position top-1 {agree2:.2f}) ({time.perf_counter() - t0:.0f} s, "
                f"{time_left(step + 1, cfg.steps, time.perf_counter() - t0)})"
            )
    head.eval().requires_grad_(False)
    metrics = {**held_out_agreement(model, head, vocab), "vocab_size": vocab.size}
    log(
        f"  held-out top-1 agreement: first draft position {metrics['held_out_top1']:.3f}, "
        f"second {metrics['held_out_top1_second']:.3f}"
    )
    info = HeadInfo(
        "eagle",
        model.key,
        cfg.layers,
        1,
        model.config.hidden_size,
        cfg.command,
        cfg.seed,
        cfg.steps,
        [round(x, 4) for x in losses],
        {
            **metrics,
            "corpus_sequences": len(examples),
            "corpus": corpus.meta.get("config", {}),
            "corpus_tasks": [r["command"] for r in task_rounds(corpus.meta)],
            **init,
        },
    )
    return head, info


@torch.inference_mode()
def held_out_agreement(model: LoadedModel, head: FeatureHead, vocab: DraftVocab) -> dict[str, float]:
    """Top-1 of the head (true features, the drafting engine's arithmetic) vs the model's greedy next token,
    over the answer positions of the suite's held-out prompts: ``held_out_top1`` at the first draft
    position, ``held_out_top1_second`` at the second (the head reading its own f^ and the true token, as a
    tree's depth-1 node on the model's path does)."""
    project = reduced_projection(model, vocab)
    hits, total = [0, 0], [0, 0]
    for seq, start in held_out_continuations(model):
        if len(seq) < start + 3:
            continue
        tokens = torch.tensor(seq, device=model.device)
        target = make_engine(model, max_len=len(seq)).forward(tokens[None, :-1])
        f, best = target.last_hidden[:, :-1], target.logits[0].argmax(-1)  # f_0..f_{T-3}; the model's next tokens
        engine = LlamaEngine(head.net, batch=1, max_len=2 * len(seq))
        drafts = draft_two_positions(head, engine, f, tokens[None, 1:-1], model.model.model.embed_tokens)
        for d, draft in enumerate(drafts):  # draft at position i predicts x_{i+2+d}
            n = draft.shape[1]
            answer = torch.arange(n, device=model.device) + 2 + d >= start
            hits[d] += int((project(draft)[0].argmax(-1) == best[1 + d : 1 + d + n])[answer].sum())
            total[d] += int(answer.sum())
    return {"held_out_top1": hits[0] / max(total[0], 1), "held_out_top1_second": hits[1] / max(total[1], 1)}


def held_out_continuations(model: LoadedModel, tokens: int = 64) -> list[tuple[list[int], int]]:
    """(prompt + greedy continuation, prompt length) for each held-out suite prompt, decoded as one batch."""
    prompts = [encode_prompt(model, p.prompt, tokens) for i, p in enumerate(load_prompts()) if is_held_out(i)]
    rows: list[list[int]] = [[] for _ in prompts]
    steps = decode_rows(WholeModel(model), prompts, [tokens] * len(prompts), SamplingConfig(0.0), torch.Generator())
    for step in steps:
        for r in step:
            rows[r.row].append(r.token)
    return [(p + r, len(p)) for p, r in zip(prompts, rows, strict=True)]
