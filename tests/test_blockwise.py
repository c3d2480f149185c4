"""Blockwise Parallel Decoding and draft refinement: lattice, rescoring, trie, identical to AR at T = 0."""

import subprocess
import sys
from pathlib import Path

import math

import pytest
import torch

import core.heads.corpus as corpus_mod
from core.heads.analysis import oracle_block
from core.blockwise.ngram import NgramLM
from core.blockwise.refine import Lattice, choose_paths, global_rescore, head_lattice, local_rescore
from core.config import GenerationConfig, SamplingConfig
from core.heads import Heads, bpd_heads_path
from core.heads.training import TrainingConfig, train_bpd_heads
from core.metrics import summarize
from core.prompts import load_prompts
from core.registry import METHODS
from core.speculative.tree import TreeTopology
from core.trace import BlockStep, StepCommitted, TreeStep, dumps, loads

BPD = ["bpd", "bpd-ngram", "bpd-neural"]
ROOT = Path(__file__).resolve().parent.parent


def run(model, name, prompt, gen, **options):
    return list(METHODS[name].run(model, prompt, gen, **options))


def test_trie_of_paths_shares_prefixes_and_masks_ancestors():
    topo, tokens, nodes = TreeTopology.from_paths(9, [[1, 2, 3], [1, 2, 4], [5, 6, 7]])
    assert tokens == [9, 1, 5, 2, 6, 3, 4, 7] and topo.parent == (-1, 0, 0, 1, 2, 3, 3, 4)
    assert nodes == [[0, 1, 3, 5], [0, 1, 3, 6], [0, 2, 4, 7]]
    assert topo.children(3) == (5, 6) and topo.k == 2 and topo.depth == 3 and topo.level(2) == range(3, 5)
    assert topo.mask[6].nonzero().flatten().tolist() == [0, 1, 3, 6]
    with pytest.raises(ValueError, match="BFS order"):
        TreeTopology.from_parents([-1, 0, 1, 0])


def test_ngram_lm_interpolates_orders_and_is_a_distribution():
    lm = NgramLM(vocab_size=6, order=3)
    lm.add([1, 2, 3, 1, 2, 4, 1, 2, 3])
    total = sum(lm.prob([1, 2], x) for x in range(6))
    assert total == pytest.approx(1.0)
    assert lm.prob([1, 2], 3) > lm.prob([1, 2], 4) > lm.prob([1, 2], 5) > 0  # 2/3, 1/3, unseen
    assert lm.logprob([0, 1], [2, 3]) == pytest.approx(
        torch.tensor(lm.prob([0, 1], 2) * lm.prob([1, 2], 3)).log().item()
    )
    with pytest.raises(ValueError, match="order"):
        NgramLM(6, order=0)


def hand_lattice():
    # two heads, top-2 each: head 1 prefers 10 over 11, head 2 prefers 20 over 21
    return Lattice([[10, 11], [20, 21]], [[-0.1, -2.0], [-0.2, -1.5]])


def test_global_rescoring_lets_the_lm_overturn_the_heads():
    lat = hand_lattice()
    lm = {(10, 20): -9.0, (10, 21): -8.0, (11, 20): -1.0, (11, 21): -7.0}
    plain = global_rescore(lat, lambda toks: lm[tuple(toks)], alpha=0.0)
    assert plain[0].tokens == [10, 20] and plain[0].ranks == [0, 0]
    rescored = global_rescore(lat, lambda toks: lm[tuple(toks)], alpha=1.0)
    assert rescored[0].tokens == [11, 20] and rescored[0].score == pytest.approx(-2.0 - 0.2 - 1.0)
    assert choose_paths(lat, rescored, 2) == [[10, 20], [11, 20]]  # plain BPD's draft always verified first


def test_local_rescoring_is_a_beam_over_the_heads():
    lat = hand_lattice()
    calls = []

    def next_logp(prefixes):
        calls.append(prefixes)
        out = torch.full((len(prefixes), 32), -5.0)
        out[:, 11] = -0.01  # the neural LM wants 11 first, then 21 after 11
        for b, p in enumerate(prefixes):
            if p == [11]:
                out[b, 21] = -0.01
        return out

    best = local_rescore(lat, next_logp, alpha=1.0, width=2)
    assert calls[0] == [[]] and sorted(calls[1]) == [[10], [11]]
    assert best[0].tokens == [11, 21] and len(best) == 2


def test_oracle_block_counts_the_leading_heads_holding_the_real_token():
    rows = [[5, 6], [7, 8], [9, 1]]
    assert oracle_block(rows, [6, 8, 2]) == 3 and oracle_block(rows, [1, 7, 9]) == 1 and oracle_block(rows, [5]) == 2


def test_head_lattice_is_each_heads_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 4.0]])
    lat = head_lattice(logits, 2)
    assert lat.tokens == [[1, 3], [0, 3]] and lat.drafted == [1, 0]
    assert all(sum(math.exp(x) for x in row) < 1 for row in lat.logq)


@pytest.mark.parametrize("name", BPD)
def test_greedy_output_is_identical_to_ar_on_tiny_model(tiny, name):
    gen = GenerationConfig(30)
    ar = summarize(run(tiny, "ar", "Blocks of tokens", gen)).output_ids
    events = run(tiny, name, "Blocks of tokens", gen, **({"layer": 2} if name == "bpd-neural" else {}))
    assert summarize(events).output_ids == ar
    assert any("No trained BPD heads" in getattr(e, "message", "") for e in events)


def test_neural_rescoring_with_a_separate_draft_model(tiny):
    gen = GenerationConfig(20)
    ar = summarize(run(tiny, "ar", "Draft models", gen)).output_ids
    events = run(tiny, "bpd-neural", "Draft models", gen, draft="model", draft_model=tiny, paths=2)
    assert summarize(events).output_ids == ar


def test_block_steps_record_the_lattice_and_the_drafts(tiny):
    events = run(tiny, "bpd-ngram", "Tell me a story", GenerationConfig(16), block=4, topk=3, paths=3)
    blocks = [e for e in events if isinstance(e, BlockStep)]
    steps = [e for e in events if isinstance(e, StepCommitted)]
    assert len(blocks) == len(steps) == len([e for e in events if isinstance(e, TreeStep)])
    for block, step in zip(blocks, steps, strict=True):
        assert len(block.lattice_tokens) == 3 and all(len(r) == 3 for r in block.lattice_tokens)
        assert block.paths[0] == [0, 0, 0] and 1 <= len(block.paths) <= 3
        drafted = [block.lattice_tokens[i][r] for i, r in enumerate(block.paths[block.accepted_path])]
        assert step.token_ids[: block.accepted] == drafted[: block.accepted][: len(step.token_ids)]
        assert step.sources == ([f"head {i}" for i in range(1, block.accepted + 1)] + ["base"])[: len(step.sources)]
    fin = summarize(events)
    assert fin.extras["oracle_block_efficiency"] >= fin.mean_accepted - 1e-9
    assert loads(dumps(events)) == events


def test_sampling_runs_use_the_lossless_match_rule(tiny):
    gen = GenerationConfig(20, SamplingConfig(0.9, seed=4))
    a = run(tiny, "bpd-ngram", "Once upon a time", gen)
    assert a[0].config["rule"] == "match" and len(summarize(a).output_ids) == 20
    assert summarize(run(tiny, "bpd-ngram", "Once upon a time", gen)).output_ids == summarize(a).output_ids


@pytest.mark.parametrize(
    "options, message",
    [
        ({"block": 1}, "block size k"),
        ({"refine": "magic"}, "Unknown draft refinement"),
        ({"topk": 0}, "top-k between 1 and 16"),
        ({"paths": 40}, "between 1 and 16"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_nonsense_options_are_refused_with_a_sentence(tiny, options, message):
    with pytest.raises(ValueError, match=message):
        run(tiny, "bpd-ngram", "Hi", GenerationConfig(4), **options)


@pytest.mark.skipif(not bpd_heads_path("smollm2-135m-instruct", 4).is_file(), reason="needs the shipped BPD heads")
@pytest.mark.parametrize("name", BPD)
def test_greedy_output_is_identical_to_ar_on_embedded_model_with_trained_heads(embedded, name):
    gen = GenerationConfig(40)
    for p in load_prompts()[::17]:
        ar = summarize(run(embedded, "ar", p.prompt, gen)).output_ids
        events = run(embedded, name, p.prompt, gen)
        assert not [e for e in events if getattr(e, "level", "") == "warning"], name
        fin = summarize(events)
        assert fin.output_ids == ar, (name, p.id)
        assert fin.mean_accepted > 1.05, (name, p.id)  # trained heads do draft accepted tokens


def test_shipped_heads_record_how_they_were_made():
    path = bpd_heads_path("smollm2-135m-instruct", 4)
    heads = Heads.load(path, torch.device("cpu"), torch.float32)
    assert heads.info.command.startswith("python -m core.train heads") and "--k 4" in heads.info.command
    assert heads.info.count == 3 and len(heads.info.losses) == 3 * heads.info.steps
    top1 = heads.info.metrics["top1_accuracy"]
    assert top1[0] > top1[1] > top1[2] > top1[3]  # base, then heads 1..3: further is harder


def test_train_heads_cli_saves_heads_with_their_settings(tmp_path):
    out = tmp_path / "bpd.pt"
    args = ["heads", "--model", "tiny-random-llama", "--k", "3", "--steps", "3", "--tokens", "4", "--out", str(out)]
    res = subprocess.run(
        [sys.executable, "-m", "core.train", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert res.returncode == 0, res.stderr
    heads = Heads.load(out, torch.device("cpu"), torch.float32)
    assert heads.info.kind == "bpd" and heads.info.count == 2 and len(heads.heads) == 2
    assert len(heads.info.losses) == 6 and "--k 3" in heads.info.command
    assert len(heads.info.metrics["held_out_top1_per_head"]) == 2
    ngram = tmp_path / "ngram.json"
    res = subprocess.run(
        [sys.executable, "-m", "core.train", "ngram", "--model", "tiny-random-llama", "--tokens", "4", "--out", ngram],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert '"sequences"' in ngram.read_text()


def test_bpd_heads_train_on_the_corpus_and_are_measured_on_the_suite(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "CORPUS", tmp_path / "corpus")
    monkeypatch.setattr(corpus_mod, "features_path", lambda key: tmp_path / f"{key}-features.pt")
    built = corpus_mod.build_corpus(tiny, corpus_mod.CorpusConfig(topics=2, questions=1, answer_tokens=5, batch=4))
    corpus_mod.save_corpus(corpus_mod.corpus_path(tiny.key), tiny, corpus_mod.CorpusConfig(topics=2), built)
    corpus_mod.save_features(tiny.key, built["features"])
    data = corpus_mod.corpus_hidden(tiny)
    corpus = corpus_mod.load_corpus(tiny.key)
    for i, (f, n) in enumerate(zip(built["features"], corpus.prompt_lengths, strict=True)):
        assert torch.equal(data.final[data.seq == i], f.float())  # f_0..f_{T-2} of sequence i, in order
        assert data.generated[data.seq == i].tolist() == [j >= n - 2 for j in range(len(f))]
    assert not data.held_out.any()
    pairs = data.offset_pairs(2, data.generated)
    assert len(pairs) and (data.seq[pairs] == data.seq[pairs + 2]).all()  # a head never reads across sequences
    heads = train_bpd_heads(tiny, 3, TrainingConfig(steps=2, batch=8, tokens=4), data="corpus")
    assert heads.info.metrics["data"] == "corpus" and len(heads.info.losses) == 4
    assert len(heads.info.metrics["held_out_top1_per_head"]) == 2
    with pytest.raises(ValueError, match="suite or corpus"):
        train_bpd_heads(tiny, 3, TrainingConfig(steps=1), data="web")
