"""Speculative chains and trees: identical to AR at temperature 0, lossless by construction at T > 0."""

import random

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.metrics import acceptance_per_depth, summarize
from core.registry import METHODS
from core.speculative.copies import ContextIndex, PromptLookup
from core.speculative.drafts import DraftSettings, DraftTree, Root
from core.speculative.rules import rule
from core.speculative.speculate import read_step
from core.speculative.tree import TreeTopology
from core.trace import StepCommitted, TreeStep, dumps, loads

TREE_METHODS = ["spec", "pld", "rrs", "rrsw", "spechub"]


def run(model, name, prompt, gen, **options):
    return list(METHODS[name].run(model, prompt, gen, **options))


@pytest.mark.parametrize("name", TREE_METHODS)
def test_greedy_output_is_identical_to_ar_on_tiny_model(tiny, name):
    gen = GenerationConfig(30)
    ar = summarize(run(tiny, "ar", "Hello there, how are you", gen)).output_ids
    assert summarize(run(tiny, name, "Hello there, how are you", gen, layer=2)).output_ids == ar


# Every lossless method against ar on the embedded model: tests/test_lossless.py (driven by the registry).


def test_tree_step_events_describe_the_tree_and_round_trip(tiny):
    events = run(tiny, "rrsw", "Tell me a story", GenerationConfig(12, SamplingConfig(1.0, seed=3)), layer=2)
    trees = [e for e in events if isinstance(e, TreeStep)]
    steps = [e for e in events if isinstance(e, StepCommitted)]
    assert trees and len(trees) == len(steps)
    for tree, step in zip(trees, steps, strict=True):
        assert len(tree.tokens) == 1 + 2 + 4 + 8 + 16 and tree.status[0] == "root"
        path = tree.accepted_path
        assert all(tree.status[n] == "accepted" for n in path[1:])
        assert [tree.tokens[n] for n in path[1:]] + [tree.final_token] == step.token_ids or step.token_ids == (
            [tree.tokens[n] for n in path[1:]] + [tree.final_token]
        )[: len(step.token_ids)]
        assert tree.final_kind in ("bonus", "resampled")
    assert loads(dumps(events)) == events


def test_acceptance_per_depth_from_hand_made_steps():
    def step(path_len, depth=3):
        n = 1 + depth
        return TreeStep(
            1,
            "rrs",
            [0] * n,
            [""] * n,
            [-1, 0, 1, 2][:n],
            list(range(n)),
            ["root"] + ["x"] * depth,
            [1.0] * n,
            [1.0] * n,
            list(range(path_len + 1)),
            0,
            "",
            "bonus",
        )

    # accepted lengths 0, 1, 3: depth 1 accepted 2/3, depth 2 accepted 1/2, depth 3 accepted 1/1
    assert acceptance_per_depth([step(0), step(1), step(3)]) == pytest.approx([2 / 3, 1 / 2, 1.0])
    # a shallower tree whose path reached its leaf cannot accept deeper: it counts as a stop at depth 2
    steps = [step(0), step(1), step(3), step(1, depth=1)]
    rates = acceptance_per_depth(steps)
    assert rates == pytest.approx([3 / 4, 1 / 3, 1.0])
    mean_accepted = sum(len(s.accepted_path) - 1 for s in steps) / len(steps)
    assert 1 + rates[0] + rates[0] * rates[1] + rates[0] * rates[1] * rates[2] == pytest.approx(1 + mean_accepted)


def _scan(context: list[int], want: int, max_ngram: int) -> list[int]:
    """The definition, by brute force: the longest suffix n-gram's latest earlier occurrence, what followed it."""
    for n in range(min(max_ngram, len(context) - 1), 0, -1):
        for start in range(len(context) - n - 1, -1, -1):
            if context[start : start + n] == context[-n:]:
                out = list(context)
                while len(out) < len(context) + want:  # the copy runs on into what it copies
                    out.append(out[start + n + len(out) - len(context)])
                return out[len(context) :]
    return []


def _index(tokens: list[int], max_ngram: int) -> ContextIndex:
    index = ContextIndex(max_ngram)
    index.extend(tokens)
    return index


def test_context_index_copies_after_the_latest_match():
    assert _index([1, 2, 3, 4, 9, 2, 3], 2).continuation(3) == [4, 9, 2]
    assert _index([5, 6, 7], 2).continuation(2) == []
    assert _index([7, 7], 3).continuation(4) == [7, 7, 7, 7]  # the latest match is one back: a loop of period 1
    assert _index([1, 2, 3, 1, 2], 2).continuation(5) == [3, 1, 2, 3, 1]  # period 3
    rng = random.Random(0)
    for _ in range(300):  # the incremental index agrees with a scan of the context, token by token
        seq, index = [rng.randrange(5) for _ in range(rng.randrange(1, 40))], ContextIndex(3)
        for i, tok in enumerate(seq):
            index.extend([tok])
            assert index.continuation(4) == _scan(seq[: i + 1], 4, 3)
    with pytest.raises(ValueError, match="n >= 1"):
        ContextIndex(0)


def first_root(ids, depth, name="rrs", temperature=1.0):
    """The ``Root`` of a run's first step over prompt ``ids``."""
    settings = DraftSettings(TreeTopology.full(1, depth), rule(name), SamplingConfig(temperature), torch.Generator())
    return Root(ids[-1], list(ids), list(ids[:-1]), None, [], settings)


def next_root(root, tree, accepted, final):
    """The next step's ``Root`` after the target accepted nodes ``accepted`` of ``tree`` and emitted ``final``."""
    emitted = [int(tree.tokens[n]) for n in accepted[1:]] + [final]
    return Root(final, root.ids + emitted, [root.token, *emitted[:-1]], None, accepted, root.settings)


def test_prompt_lookup_copies_after_the_latest_match():
    pl = PromptLookup(vocab_size=100, device=torch.device("cpu"), max_ngram=2)
    tree = pl.propose(first_root([1, 2, 3, 4, 2, 3], 3))  # context [1, 2, 3, 4, 2]; root 3 makes the tail (2, 3)
    assert tree.tokens.tolist() == [3, 4, 2, 3] and float(tree.q[0][4]) == 1.0 and tree.topology.depth == 3


def test_prompt_lookup_verifies_as_much_of_the_copy_as_pays():
    """With a verify-cost curve the chain is cut where (1 + sum of c) / v(m + 1) peaks, c_j = a_0 ... a_j the
    run's own copy hit rates: at the prior (1/3 each) only a near-free verify keeps the whole copy; a
    copy that keeps coming true earns its length on a curve where each node costs 0.3 of a forward."""
    cpu = torch.device("cpu")
    cheap = PromptLookup(vocab_size=20, device=cpu, curve={"n": [1, 64], "relative": [1.0, 1.0]})
    steep = PromptLookup(vocab_size=20, device=cpu, curve={"n": [1, 2, 64], "relative": [1.0, 1.4, 26.2]})
    prompt = [5, 1, 2, 3, 4, 1, 2, 3, 4, 1]  # the last prompt token is the first root
    assert cheap.propose(first_root(prompt, 4, temperature=0.0)).tokens.tolist() == [1, 2, 3, 4, 1]  # root 1, copy
    root, sizes = first_root(prompt, 4, temperature=0.0), []
    for _ in range(30):  # the model keeps to the loop 1 2 3 4: every copied token comes true
        tree = steep.propose(root)
        n = tree.topology.size
        sizes.append(n - 1)
        root = next_root(root, tree, list(range(n)), int(tree.tokens[-1]) % 4 + 1)  # the token after the copy
    assert sizes[0] == 0  # (1 + 1/3) / 1.4 < 1: at the prior the copy is not verified at all
    assert sizes == sorted(sizes) and sizes[-1] == 4  # it earns its whole length as it keeps coming true


@pytest.mark.parametrize(
    "options, words",
    [
        ({"rule": "spechub", "k": 3}, "k = 2"),
        ({"draft": "lookup", "k": 2}, "k = 1"),
        ({"draft": "telepathy"}, "Unknown draft source"),
        ({"layer": 9}, "exit layer"),
        ({"draft": "model"}, "needs a draft model"),
    ],
)
def test_bad_options_get_clear_messages(tiny, options, words):
    with pytest.raises(ValueError, match=words):
        run(tiny, "rrs", "Hi", GenerationConfig(4, SamplingConfig(1.0)), **{"layer": 2, **options})


def test_separate_draft_model_is_lossless_and_checked_for_vocabulary(tiny):
    from dataclasses import replace

    from core.speculative.drafts import check_same_vocabulary

    gen = GenerationConfig(20)
    ar = summarize(run(tiny, "ar", "A draft model test", gen)).output_ids
    events = run(tiny, "rrs", "A draft model test", gen, draft="model", draft_model=tiny)
    m = summarize(events)
    assert m.output_ids == ar
    assert m.mean_accepted == pytest.approx(5.0, rel=0.3)  # the draft is the target itself: nearly all accepted

    class OtherTokenizer:
        def get_vocab(self):
            return {"a": 0, "b": 1}

    other = replace(tiny, tokenizer=OtherTokenizer(), display_name="other")
    with pytest.raises(ValueError, match="different vocabulary"):
        check_same_vocabulary(tiny, other)


def test_children_a_rule_could_not_draw_are_never_offered_to_it():
    """q with one token of mass: RRSw draws one child; the padding copy is never offered (q_j = 0 there), and
    the walk examines one child."""
    q = torch.zeros(1, 5)
    q[0, 3] = 1.0
    kids, offered = rule("rrsw").children(q, 2, torch.rand(1, 2, generator=torch.Generator().manual_seed(0)))
    assert kids.tolist() == [[3, 3]] and offered.tolist() == [[True, False]]
    topo = TreeTopology.full(2, 1)
    tree = DraftTree(topo, torch.tensor([7, 3, 3]), torch.ones(3), q, torch.tensor([True, True, False]))
    assert tree.candidates(0, tree.offered.tolist()) == [1]
    p = torch.zeros(2, 5)
    p[:, 4] = 1.0  # the target wants token 4: the one child is rejected and 4 is drawn from the residual
    seen = read_step(tree, rule("rrsw").evaluate(tree, p.log(), SamplingConfig(1.0), torch.Generator()), torch.tensor(False))
    assert seen.nodes == [0] and seen.final == 4 and seen.examined == {0: 1}


def test_train_exit_head_cli_records_hit_rates(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from core.heads import Heads

    out = tmp_path / "exit.pt"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.train",
            "exit-head",
            "--model",
            "tiny-random-llama",
            "--layer",
            "2",
            "--steps",
            "3",
            "--tokens",
            "4",
            "--samples",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    head = Heads.load(out, torch.device("cpu"), torch.float32)
    assert head.info.kind == "exit" and head.info.layer == 2 and len(head.info.losses) == 3
    # greedy continuations of 42 training prompts + 2 sampled ones each, 4 generated tokens and the
    # prompt's last two positions per sequence (those that can draft generated text)
    assert head.info.metrics["train_positions"] == 42 * 3 * (4 + 2)
    assert 0 <= head.info.metrics["held_out_hit_rate"] <= 1
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.train",
            "exit-head",
            "--model",
            "tiny-random-llama",
            "--layer",
            "9",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=600,
    )
    assert bad.returncode == 2 and "--layer must be between 1 and 3" in bad.stderr
