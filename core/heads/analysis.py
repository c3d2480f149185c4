"""Analysis of Blockwise Parallel Decoding heads (Kim et al. 2024), as pure tensor functions.

Inputs over P positions and K predictors (index 0 = the base LM head, i >= 1 = head i,
which predicts token t+1+i from h_t): logits [P, K, V] and the model's own greedy
tokens ``truth`` [P, K] at those offsets.

- top-1 accuracy per predictor: argmax == truth;
- entropy per predictor (nats), which rises with the head index;
- consecutive repetition: how often predictors i and i+1 have the same argmax;
- oracle block efficiency of the top-k lattice: if the best path through each
  predictor's top-k tokens were drafted, the block accepted at a position is 1 + the
  longest n with truth_i in top-k(predictor i) for i = 1..n (the base's own token
  always counts), averaged over positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HeadAnalysis:
    top1_accuracy: list[float]
    entropy: list[float]
    repetition: list[float]  # predictor i vs i + 1, for i = 0..K-2
    oracle_block_efficiency: float
    greedy_block_efficiency: float  # the same with top-1 (plain BPD's expected block at these positions)


def _block_efficiency(hit: torch.Tensor) -> float:
    """hit [P, K-1] bool for heads 1..K-1: 1 + length of the leading run of hits, averaged."""
    run = torch.cumprod(hit.long(), dim=1).sum(dim=1)
    return float(1 + run.float().mean())


def oracle_block(rows: list[list[int]], continuation: list[int]) -> int:
    """Tokens one step would commit had the best path through its lattice been drafted: 1 + the
    leading run of heads whose top-k ``rows[i]`` holds the real token ``continuation[i]``."""
    run = 0
    for row, tok in zip(rows, continuation, strict=False):
        if tok not in row:
            break
        run += 1
    return 1 + run


def analyse_heads(logits: torch.Tensor, truth: torch.Tensor, topk: int = 4) -> HeadAnalysis:
    logits = logits.float()
    top1 = logits.argmax(-1)  # [P, K]
    log_q = torch.log_softmax(logits, -1)
    entropy = -(log_q.exp() * log_q).sum(-1)  # [P, K]
    in_topk = (logits.topk(topk, dim=-1).indices == truth[..., None]).any(-1)  # [P, K]
    return HeadAnalysis(
        top1_accuracy=(top1 == truth).float().mean(0).tolist(),
        entropy=entropy.mean(0).tolist(),
        repetition=(top1[:, :-1] == top1[:, 1:]).float().mean(0).tolist(),
        oracle_block_efficiency=_block_efficiency(in_topk[:, 1:]),
        greedy_block_efficiency=_block_efficiency((top1 == truth)[:, 1:]),
    )
