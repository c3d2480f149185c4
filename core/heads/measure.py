"""Measuring heads: hit rates (argmax q == the model's argmax p), the hit-rate curve over every
exit layer (shown on the SPEED page), and Kim et al.'s analysis of BPD heads."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.heads.analysis import analyse_heads
from core.heads.data import HiddenSet, collect_hidden, distill_sequences, log
from core.heads.modules import ASSETS, Heads, exit_head_path, head_logits, lm_projection
from core.models import LoadedModel

HIT_RATES = ASSETS / "hit_rates"


@torch.inference_mode()
def hit_rate(model: LoadedModel, head, h: torch.Tensor, final: torch.Tensor, chunk: int = 1024) -> float:
    """Fraction of positions where argmax of the head's q equals argmax of the model's p."""
    hits, project = 0, lm_projection(model.model)
    for i in range(0, len(h), chunk):
        q = head_logits(project, head, h[i : i + chunk].to(model.device, model.dtype)).argmax(-1)
        p = head_logits(project, None, final[i : i + chunk].to(model.device, model.dtype)).argmax(-1)
        hits += int((q == p).sum())
    return hits / max(len(h), 1)


@torch.inference_mode()
def bpd_head_analysis(model: LoadedModel, heads: Heads, data: HiddenSet, positions: int = 1024, topk: int = 4) -> dict:
    """Kim et al.'s head analysis on up to ``positions`` held-out generated positions (core.heads.analysis)."""
    k = len(heads.heads) + 1
    pos = data.offset_pairs(k - 1, data.held_out & data.generated)[:positions]
    h, project = data.final[pos].to(model.device, model.dtype), lm_projection(model.model)
    logits = torch.stack([head_logits(project, head, h) for head in [None, *heads.heads]], dim=1)  # [P, K, V]
    truth = torch.stack(
        [head_logits(project, None, data.final[pos + i].to(model.device, model.dtype)).argmax(-1) for i in range(k)],
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


def hit_rate_path(model: LoadedModel) -> Path:
    return HIT_RATES / f"{model.key}.json"


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


def load_hit_rates(model_key: str) -> dict | None:
    """The recorded hit-rate curve of ``model_key`` (``python -m core.train hit-rates``), or None."""
    path = HIT_RATES / f"{model_key}.json"
    return json.loads(path.read_text()) if path.is_file() else None
