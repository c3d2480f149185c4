"""Training small heads on a frozen target by self-distillation (no external data set).

    python -m core.train exit-head --model embedded --layer 8 [--steps 300] [--seed 0] [--samples 8]
    python -m core.train heads --model embedded --k 4 [--samples 8]

Data: the target's own greedy continuations of the shipped prompt suite, plus optionally
``--samples`` sampled continuations of each training prompt (cached under
``$DECODING_LAB_CACHE/distill``). Every generated position gives one example: the hidden
state after layer e (BPD: the last hidden state), and the target's own distribution p of
the token to predict as the soft label. A head minimises KL(p || q_head); every fifth
prompt is held out to measure the hit rate (argmax q == argmax p) of the trained head
and of the plain early exit (final norm + LM head at layer e). Progress goes to stderr;
the file records the command, seed, loss curve and hit rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.batch import PoolMember, decode_rows
from core.bpd_analysis import analyse_heads
from core.config import GenerationConfig, ModelSpec, SamplingConfig
from core.engine import LlamaEngine
from core.heads import ASSETS, HeadInfo, Heads, bpd_heads_path, exit_head_path, head_logits, ngram_path
from core.methods.ar import run_ar
from core.models import LoadedModel, cache_root, load_model
from core.prompts import is_held_out, load_prompts
from core.text import encode_prompt
from core.trace import RunFinished

ASSETS_HIT_RATES = ASSETS.parent / "hit_rates"


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
        events = list(run_ar(model, p.prompt, GenerationConfig(max_new_tokens)))
        seqs.append(list(events[0].prompt_ids) + events[-1].output_ids if isinstance(events[-1], RunFinished) else [])
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
    member = PoolMember(model.key, model)
    for i, p in enumerate(load_prompts()):
        if is_held_out(i):
            continue
        ids = encode_prompt(model, p.prompt, max_new_tokens)
        rows: list[list[int]] = [[] for _ in range(samples)]
        gen = torch.Generator(device=model.device).manual_seed(i)
        for step in decode_rows(member, [ids] * samples, [max_new_tokens] * samples, SamplingConfig(temperature), gen):
            for r in step:
                rows[r.row].append(r.token)
        seqs += [ids + row for row in rows]
        log(f"  sampled continuations: prompt {i + 1}/{len(load_prompts())} ({time.perf_counter() - t0:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(seqs, path)
    return seqs


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
    by_layer: dict[int, list] = {e: [] for e in layers}
    final, held, which, generated = [], [], [], []
    starts = prompt_lengths(model)
    for i, seq in enumerate([*seqs, *extra]):
        engine = LlamaEngine(model.model, max_len=len(seq))
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


@torch.inference_mode()
def hit_rate(model: LoadedModel, head, h: torch.Tensor, final: torch.Tensor, chunk: int = 1024) -> float:
    """Fraction of positions where argmax of the head's q equals argmax of the model's p."""
    hits = 0
    for i in range(0, len(h), chunk):
        q = head_logits(model.model, head, h[i : i + chunk].to(model.device, model.dtype)).argmax(-1)
        p = head_logits(model.model, None, final[i : i + chunk].to(model.device, model.dtype)).argmax(-1)
        hits += int((q == p).sum())
    return hits / max(len(h), 1)


def train_head(
    model: LoadedModel,
    head: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
) -> list[float]:
    """Minimise KL(p || q) with p from ``targets`` (final hidden states), q from the head on ``inputs``."""
    head = head.to(model.device, torch.float32).train().requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(inputs), (batch,), generator=gen)
        with torch.no_grad():
            log_p = torch.log_softmax(head_logits(model.model, None, targets[idx].to(model.device, model.dtype)), -1)
        h = head(inputs[idx].to(model.device, torch.float32)).to(model.dtype)
        log_q = torch.log_softmax(head_logits(model.model, None, h), -1)
        loss = torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(float(loss.detach()), 5))
        if step % 20 == 0 or step == steps:
            recent = losses[-20:]
            log(f"  step {step}/{steps}  KL {sum(recent) / len(recent):.4f}  ({time.perf_counter() - t0:.0f} s)")
    head.eval().requires_grad_(False)
    return losses


def self_distilled(model: LoadedModel, tokens: int, samples: int, temperature: float, layers: tuple[int, ...]):
    """Hidden states of the greedy continuations of the suite plus ``samples`` sampled ones per training prompt."""
    log("collecting self-distillation data")
    extra = sampled_sequences(model, tokens, samples, temperature) if samples else []
    return collect_hidden(model, distill_sequences(model, tokens), layers, extra)


def train_exit_head(
    model: LoadedModel,
    layer: int,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    tokens: int,
    command: str,
    samples: int = 0,
    temperature: float = 0.8,
) -> Heads:
    """An exit head at layer e: reads h_e and learns the model's own next-token distribution p_{t+1}."""
    n_layers = model.config.num_hidden_layers
    if not 1 <= layer < n_layers:
        raise ValueError(f"--layer must be between 1 and {n_layers - 1} for this {n_layers}-layer model.")
    data = self_distilled(model, tokens, samples, temperature, (layer,))
    train, held = ~data.held_out & data.generated, data.held_out & data.generated
    log(f"  {int(train.sum())} training positions, {int(held.sum())} held out")
    info = HeadInfo(
        kind="exit",
        model=model.key,
        layer=layer,
        count=1,
        hidden=model.config.hidden_size,
        command=command,
        seed=seed,
        steps=steps,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # scoped: the head's random init
        heads = Heads.new(info)
    plain = hit_rate(model, None, data.by_layer[layer][held], data.final[held])
    heads.info.losses = train_head(
        model,
        heads.heads[0],
        data.by_layer[layer][train],
        data.final[train],
        steps=steps,
        batch=batch,
        lr=lr,
        seed=seed,
    )
    trained = hit_rate(model, heads.heads[0], data.by_layer[layer][held], data.final[held])
    heads.info.metrics = {
        "held_out_hit_rate": trained,
        "plain_exit_hit_rate": plain,
        "train_positions": int(train.sum()),
        "held_out_positions": int(held.sum()),
    }
    log(f"held-out hit rate at layer {layer}: trained head {trained:.3f}, plain early exit {plain:.3f}")
    return heads


def train_bpd_heads(
    model: LoadedModel,
    k: int,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    tokens: int,
    command: str,
    samples: int = 0,
    temperature: float = 0.8,
) -> Heads:
    """k - 1 BPD heads; head i reads h_t and learns p_{t+i}, the model's own distribution of token t+1+i.
    Data: the greedy continuations, plus ``samples`` sampled ones per training prompt."""
    if not 2 <= k <= 9:
        raise ValueError(f"--k must be between 2 and 9 (the block size: base + k - 1 heads), got {k}.")
    data = self_distilled(model, tokens, samples, temperature, ())
    info = HeadInfo(
        kind="bpd",
        model=model.key,
        layer=model.config.num_hidden_layers,
        count=k - 1,
        hidden=model.config.hidden_size,
        command=command,
        seed=seed,
        steps=steps,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # scoped: the heads' random init
        heads = Heads.new(info)
    accuracy = []
    for i, head in enumerate(heads.heads, start=1):
        train = data.offset_pairs(i, ~data.held_out & data.generated)
        held = data.offset_pairs(i, data.held_out & data.generated)
        log(f"head {i} (predicts token t+{i + 1}): {len(train)} training pairs, {len(held)} held out")
        heads.info.losses += train_head(
            model, head, data.final[train], data.final[train + i], steps=steps, batch=batch, lr=lr, seed=seed + i
        )
        accuracy.append(hit_rate(model, head, data.final[held], data.final[held + i]))
        log(f"  head {i}: held-out top-1 agreement with the model {accuracy[-1]:.3f}")
    heads.info.metrics = {"held_out_top1_per_head": accuracy, **bpd_head_analysis(model, heads, data)}
    return heads


@torch.inference_mode()
def bpd_head_analysis(model: LoadedModel, heads: Heads, data: HiddenSet, positions: int = 1024, topk: int = 4) -> dict:
    """Kim et al.'s head analysis on up to ``positions`` held-out generated positions (see core.bpd_analysis)."""
    k = len(heads.heads) + 1
    pos = data.offset_pairs(k - 1, data.held_out & data.generated)[:positions]
    h = data.final[pos].to(model.device, model.dtype)
    logits = torch.stack([head_logits(model.model, head, h) for head in [None, *heads.heads]], dim=1)  # [P, K, V]
    truth = torch.stack(
        [
            head_logits(model.model, None, data.final[pos + i].to(model.device, model.dtype)).argmax(-1)
            for i in range(k)
        ],
        dim=1,
    )  # [P, K]: the model's own greedy token at t+1+i
    a = analyse_heads(logits.cpu(), truth.cpu(), topk=topk)
    log(
        f"  head analysis: top-1 {[round(x, 3) for x in a.top1_accuracy]}, entropy {[round(x, 2) for x in a.entropy]}, "
        f"oracle block efficiency (top-{topk}) {a.oracle_block_efficiency:.2f}, greedy {a.greedy_block_efficiency:.2f}"
    )
    return {
        "analysis_positions": len(pos),
        "top1_accuracy": a.top1_accuracy,
        "entropy": a.entropy,
        "repetition": a.repetition,
        f"oracle_block_efficiency_top{topk}": a.oracle_block_efficiency,
        "greedy_block_efficiency": a.greedy_block_efficiency,
    }


def ngram_sequences(model: LoadedModel, tokens: int, command: str) -> dict:
    """The self-distilled token sequences of the suite's training prompts, for BPD's n-gram LM (the
    held-out prompts stay out, so rescoring them is not helped by their own continuations)."""
    seqs = distill_sequences(model, tokens)
    train = [s for i, s in enumerate(seqs) if not is_held_out(i)]
    log(f"  {len(train)} training sequences, {sum(map(len, train))} tokens")
    return {"model": model.key, "command": command, "tokens": tokens, "sequences": train}


def hit_rate_path(model: LoadedModel) -> Path:
    return ASSETS_HIT_RATES / f"{model.key}.json"


def layer_hit_rates(model: LoadedModel, tokens: int) -> dict:
    """Hit rate of the plain early exit at every layer e = 1..L-1 on the suite's self-distilled generated
    positions, and of every shipped trained exit head on its held-out generated positions."""
    n_layers = model.config.num_hidden_layers
    layers = tuple(range(1, n_layers))
    data = collect_hidden(model, distill_sequences(model, tokens), layers)
    plain = []
    for e in layers:
        plain.append(hit_rate(model, None, data.by_layer[e][data.generated], data.final[data.generated]))
        log(f"  layer {e}: plain early exit hit rate {plain[-1]:.3f}")
    trained = {}
    for e in layers:
        path = exit_head_path(model.key, e)
        if path.is_file():
            head = Heads.load(path, model.device, model.dtype).heads[0]
            held = data.held_out & data.generated
            trained[str(e)] = hit_rate(model, head, data.by_layer[e][held], data.final[held])
            log(f"  layer {e}: trained exit head hit rate {trained[str(e)]:.3f} (held-out prompts)")
    return {
        "model": model.key,
        "layers": list(layers),
        "plain": plain,
        "trained": trained,
        "positions": int(data.generated.sum()),
        "held_out_positions": int((data.held_out & data.generated).sum()),
    }


def add_sample_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--samples", type=int, default=0, help="sampled continuations per training prompt, besides greedy"
    )
    parser.add_argument("--temperature", type=float, default=0.8, help="temperature of those samples")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    ex = sub.add_parser("exit-head", help="an exit head at layer e (self-draft for speculative decoding, SPEED)")
    ex.add_argument("--model", default="embedded")
    ex.add_argument("--layer", type=int, required=True)
    ex.add_argument("--steps", type=int, default=300)
    ex.add_argument("--batch", type=int, default=256)
    ex.add_argument("--lr", type=float, default=2e-3)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--tokens", type=int, default=64, help="length of each greedy continuation")
    add_sample_options(ex)
    ex.add_argument("--out", default="", help="default: assets/heads/<model>-exit-L<layer>.pt")
    bp = sub.add_parser("heads", help="k - 1 Blockwise Parallel Decoding heads on the last hidden state")
    bp.add_argument("--model", default="embedded")
    bp.add_argument("--k", type=int, default=4)
    bp.add_argument("--steps", type=int, default=600, help="per head")
    bp.add_argument("--batch", type=int, default=256)
    bp.add_argument("--lr", type=float, default=2e-3)
    bp.add_argument("--seed", type=int, default=0)
    bp.add_argument("--tokens", type=int, default=64)
    add_sample_options(bp)
    bp.add_argument("--out", default="", help="default: assets/heads/<model>-bpd-k<k>.pt")
    hr = sub.add_parser("hit-rates", help="early-exit hit rate at every layer (plain and trained heads), JSON out")
    hr.add_argument("--model", default="embedded")
    hr.add_argument("--tokens", type=int, default=64)
    hr.add_argument("--out", default="", help="default: assets/hit_rates/<model>.json")
    ng = sub.add_parser("ngram", help="self-distilled text of the training prompts for BPD's n-gram rescoring")
    ng.add_argument("--model", default="embedded")
    ng.add_argument("--tokens", type=int, default=128)
    ng.add_argument("--out", default="", help="default: assets/ngram/<model>.json")
    args = ap.parse_args(argv)
    command = "python -m core.train " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        model = load_model(ModelSpec(args.model, "auto", "float32"), lambda f, m: log(f"  {m}"))
        if args.what in ("hit-rates", "ngram"):
            out = (
                Path(args.out)
                if args.out
                else (hit_rate_path(model) if args.what == "hit-rates" else ngram_path(model.key))
            )
            data = (
                layer_hit_rates(model, args.tokens)
                if args.what == "hit-rates"
                else ngram_sequences(model, args.tokens, command)
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=None if args.what == "ngram" else 1))
            log(f"saved {out}")
            return 0
        train, default_out = (
            (train_bpd_heads, bpd_heads_path(model.key, args.k))
            if args.what == "heads"
            else (train_exit_head, exit_head_path(model.key, args.layer))
        )
        size = {"k": args.k} if args.what == "heads" else {"layer": args.layer}
        heads = train(
            model,
            **size,
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            seed=args.seed,
            tokens=args.tokens,
            samples=args.samples,
            temperature=args.temperature,
            command=command,
        )
    except (ValueError, RuntimeError) as exc:
        log(f"error: {exc}")
        return 2
    out = Path(args.out) if args.out else default_out
    heads.save(out)
    log(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
