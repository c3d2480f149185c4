"""Head analysis on hand-built logits with the expected figure per row."""

import math

import pytest
import torch

from core.heads.analysis import analyse_heads


def one_hot_logits(rows):
    """rows: per position, per predictor, the ranked token ids (first = argmax); vocabulary of 6."""
    out = torch.full((len(rows), len(rows[0]), 6), -10.0)
    for p, preds in enumerate(rows):
        for k, ranked in enumerate(preds):
            for r, tok in enumerate(ranked):
                out[p, k, tok] = 5.0 - r
    return out


def test_accuracy_repetition_and_block_efficiencies():
    logits = one_hot_logits(
        [
            [[1, 2], [3, 4], [3, 5]],  # base 1 ok, head1 3 ok, head2 top-1 3 wrong (truth 5, 2nd in top-2)
            [[2, 0], [0, 1], [4, 0]],  # head1 top-1 0 wrong (truth 1, in top-2), head2 4 ok
        ]
    )
    truth = torch.tensor([[1, 3, 5], [2, 1, 4]])
    a = analyse_heads(logits, truth, topk=2)
    assert a.top1_accuracy == [1.0, 0.5, 0.5]
    assert a.repetition == [0.0, 0.5]  # row 0: head1 and head2 both say 3
    # greedy: row 0 accepts head1 then stops (1 + 1), row 1 stops at head1 (1 + 0)
    assert a.greedy_block_efficiency == pytest.approx(1.5)
    # oracle top-2: row 0 gets both heads (1 + 2), row 1 gets both too (1 in head1's top-2, 4 in head2's)
    assert a.oracle_block_efficiency == pytest.approx(3.0)


def test_entropy_of_uniform_and_peaked_predictors():
    logits = torch.zeros(1, 2, 4)
    logits[0, 0, 2] = 100.0
    a = analyse_heads(logits, torch.tensor([[2, 0]]), topk=1)
    assert a.entropy[0] == pytest.approx(0.0, abs=1e-6)
    assert a.entropy[1] == pytest.approx(math.log(4))
