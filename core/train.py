"""``python -m core.train``: train and measure heads by self-distillation, one function per subcommand. It sits
above every method family (it trains BPD's, EAGLE's and the exit heads, and BPD's n-gram LM).

    python -m core.train exit-head --model embedded --layer 8 [--steps 300] [--seed 0] [--samples 8]
        [--data suite|corpus] [--sequences N]
    python -m core.train heads --model embedded --k 4 [--samples 8] [--data suite|corpus]
    python -m core.train hit-rates --model embedded
    python -m core.train ngram --model embedded
    python -m core.train corpus --model embedded [--topics 0] [--questions 2] [--batch 32] [--seed 0]
    python -m core.train tasks --model embedded [--per-kind 300] [--answer-tokens 96] [--seed 0] [--kinds ...]
    python -m core.train vocab --model embedded [--coverage 0.97]
    python -m core.train eagle --model embedded [--steps 400] [--seed 0]

Progress goes to stderr; a head file records the command, seed, loss curve and held-out figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from core.blockwise.ngram import ngram_path
from core.config import ModelSpec
from core.heads.corpus import (
    CorpusConfig,
    TasksConfig,
    build_corpus,
    corpus_path,
    extend_with_tasks,
    features_path,
    load_corpus,
    save_corpus,
    save_features,
    write_corpus,
)
from core.heads.data import distill_sequences, log
from core.eagle.head import feature_head_path, save_feature_head
from core.eagle.training import FeatureTrainingConfig, train_feature_head
from core.heads.measure import hit_rate_path, layer_hit_rates
from core.heads.modules import bpd_heads_path, check_exit_layer, exit_head_path
from core.heads.tasks import KINDS
from core.heads.training import TrainingConfig, train_bpd_heads, train_exit_head
from core.heads.vocab import COVERAGE_TARGET, build_vocab, load_draft_vocab, vocab_path
from core.models import LoadedModel, load_model
from core.prompts import is_held_out


def exit_head(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    check_exit_layer(model.config.num_hidden_layers, args.layer, "--layer")
    heads = train_exit_head(model, args.layer, _training(args, command), args.data, args.sequences)
    return _save(heads, Path(args.out) if args.out else exit_head_path(model.key, args.layer))


def bpd_heads(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    heads = train_bpd_heads(model, args.k, _training(args, command), args.data)
    return _save(heads, Path(args.out) if args.out else bpd_heads_path(model.key, args.k))


def hit_rates(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    out = Path(args.out) if args.out else hit_rate_path(model)
    return _write(out, json.dumps(layer_hit_rates(model, args.tokens), indent=1))


def ngram(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    """The self-distilled token sequences of the suite's training prompts, for BPD's n-gram LM (the
    held-out prompts stay out, so rescoring them is not helped by their own continuations)."""
    seqs = distill_sequences(model, args.tokens)
    train = [s for i, s in enumerate(seqs) if not is_held_out(i)]
    log(f"  {len(train)} training sequences, {sum(map(len, train))} tokens")
    corpus = {"model": model.key, "command": command, "tokens": args.tokens, "sequences": train}
    return _write(Path(args.out) if args.out else ngram_path(model.key), json.dumps(corpus))


def corpus(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    """The model's own answers to questions it wrote over the topic list (``core.heads.corpus``)."""
    keys = ("topics", "questions", "answer_tokens", "temperature", "batch", "seed")
    cfg = CorpusConfig(**{k: getattr(args, k) for k in keys}, command=command)
    if min(cfg.questions, cfg.answer_tokens, cfg.batch) < 1 or cfg.topics < 0:
        raise ValueError("--questions, --answer-tokens and --batch must be at least 1, --topics at least 0.")
    built = build_corpus(model, cfg)
    if not args.out:
        log(f"  cached the target's hidden states over the corpus at {save_features(model.key, built['features'])}")
    return save_corpus(Path(args.out) if args.out else corpus_path(model.key), model, cfg, built)


def tasks(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    """A round of coding, math, writing, rewriting and advice answers appended to the corpus (``core.heads.tasks``)."""
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    cfg = TasksConfig(args.per_kind, args.answer_tokens, args.batch, args.seed, command, kinds)
    if min(cfg.per_kind, cfg.answer_tokens, cfg.batch) < 1:
        raise ValueError("--per-kind, --answer-tokens and --batch must be at least 1.")
    corpus = load_corpus(model.key)
    cached = features_path(model.key)
    features = torch.load(cached, weights_only=True) if cached.is_file() else None
    if features is not None and len(features) != len(corpus.seqs):
        features = None
    extend_with_tasks(model, corpus, cfg, features)
    if features is not None:
        log(f"  extended the cached hidden states at {save_features(model.key, features)}")
    return write_corpus(corpus_path(model.key), model, corpus.seqs, corpus.prompt_lengths, corpus.meta)


def vocab(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    """The reduced draft vocabulary: the smallest N covering ``--coverage`` of the corpus's answer tokens."""
    corpus = load_corpus(model.key)
    built = build_vocab(corpus.generated_tokens(), model.config.vocab_size, args.coverage, {"command": command})
    log(f"  N = {built['size']:,} tokens cover {built['coverage']:.3f} of {built['generated_tokens']:,} answer tokens")
    return _write(Path(args.out) if args.out else vocab_path(model.key), json.dumps(built))


def eagle(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    """The feature-level (EAGLE) draft head over the corpus, projecting onto the reduced vocabulary."""
    draft_vocab = load_draft_vocab(model)
    if draft_vocab is None:
        raise ValueError(f"No reduced vocabulary for {model.key}: run `python -m core.train vocab` first.")
    keys = ("steps", "batch", "lr", "seed", "init", "w_second", "layers")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds or set(kinds) - {"greedy", "sampled", "task"}:
        raise ValueError("--kinds takes greedy, sampled and task answers (comma-separated).")
    head, info = train_feature_head(
        model, draft_vocab, FeatureTrainingConfig(**{k: getattr(args, k) for k in keys}, kinds=kinds, command=command)
    )
    return save_feature_head(head, info, Path(args.out) if args.out else feature_head_path(model.key))


def _training(args: argparse.Namespace, command: str) -> TrainingConfig:
    keys = ("steps", "batch", "lr", "seed", "tokens", "samples", "temperature")
    return TrainingConfig(**{k: getattr(args, k) for k in keys}, command=command)


def _save(heads, out: Path) -> Path:
    heads.save(out)
    return out


def _write(out: Path, text: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def _trainer(sub, name: str, help: str, size: tuple[str, int, bool], steps: int, out: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("--model", default="embedded")
    flag, default, required = size
    p.add_argument(flag, type=int, default=None if required else default, required=required)
    p.add_argument("--steps", type=int, default=steps, help="per head" if name == "heads" else None)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokens", type=int, default=64, help="length of each greedy continuation")
    p.add_argument("--samples", type=int, default=0, help="sampled continuations per training prompt, besides greedy")
    p.add_argument("--temperature", type=float, default=0.8, help="temperature of those samples")
    p.add_argument("--out", default="", help=f"default: {out}")
    return p


def _measure(sub, name: str, help: str, tokens: int, out: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("--model", default="embedded")
    p.add_argument("--tokens", type=int, default=tokens)
    p.add_argument("--out", default="", help=f"default: {out}")
    return p


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = _trainer(
        sub,
        "exit-head",
        "an exit head at layer e (self-draft, SPEED)",
        ("--layer", 8, True),
        300,
        "assets/heads/<model>-exit-L<layer>.pt",
    )
    p.add_argument("--data", choices=("suite", "corpus"), default="suite", help="training text: suite or corpus")
    p.add_argument("--sequences", type=int, default=0, help="corpus sequences, spread over it (0: all)")
    p.set_defaults(run=exit_head)
    p = _trainer(
        sub,
        "heads",
        "k - 1 Blockwise Parallel Decoding heads on the last hidden state",
        ("--k", 4, False),
        600,
        "assets/heads/<model>-bpd-k<k>.pt",
    )
    p.add_argument("--data", choices=("suite", "corpus"), default="suite", help="training text: suite or corpus")
    p.set_defaults(run=bpd_heads)
    _measure(
        sub,
        "hit-rates",
        "early-exit hit rate at every layer (plain and trained heads), JSON out",
        64,
        "assets/hit_rates/<model>.json",
    ).set_defaults(run=hit_rates)
    _measure(
        sub,
        "ngram",
        "self-distilled text of the training prompts for BPD's n-gram rescoring",
        128,
        "assets/ngram/<model>.json",
    ).set_defaults(run=ngram)
    p = sub.add_parser("corpus", help="self-distillation corpus: the model's questions over a topic list, answered")
    p.add_argument("--model", default="embedded")
    p.add_argument("--topics", type=int, default=0, help="the first N topics of the list (0: all)")
    p.add_argument("--questions", type=int, default=2, help="model-written questions per topic")
    p.add_argument("--answer-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=1.0, help="of the sampled answers")
    p.add_argument("--batch", type=int, default=32, help="rows decoded together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="default: assets/corpus/<model>.npz")
    p.set_defaults(run=corpus)
    p = sub.add_parser("tasks", help="append a round of coding, math, writing, rewriting and advice answers")
    p.add_argument("--model", default="embedded")
    p.add_argument("--per-kind", type=int, default=300, help="math, writing, rewriting and advice prompts each")
    p.add_argument("--kinds", default=",".join(KINDS), help="task kinds of this round (comma-separated)")
    p.add_argument("--answer-tokens", type=int, default=96)
    p.add_argument("--batch", type=int, default=32, help="rows decoded together")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=tasks)
    p = sub.add_parser("vocab", help="reduced draft vocabulary from the corpus (coverage curve, chosen N)")
    p.add_argument("--model", default="embedded")
    p.add_argument("--coverage", type=float, default=COVERAGE_TARGET, help="share of answer tokens to cover")
    p.add_argument("--out", default="", help="default: assets/vocab/<model>.json")
    p.set_defaults(run=vocab)
    p = sub.add_parser("eagle", help="feature-level (EAGLE) draft head over the corpus")
    p.add_argument("--model", default="embedded")
    p.add_argument("--steps", type=int, default=1100)
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="", help="a head file to continue training from")
    p.add_argument("--layers", type=int, default=1, help="decoder layers of the head (EAGLE: 1)")
    p.add_argument(
        "--w-second", type=float, default=1.0, help="weight of the second draft position's loss (0: first only)"
    )
    p.add_argument(
        "--kinds", default="greedy,sampled,task", help="corpus answers to train on: greedy, sampled, task (any of them)"
    )
    p.add_argument("--out", default="", help="default: assets/heads/<model>-eagle.pt")
    p.set_defaults(run=eagle)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = "python -m core.train " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        model = load_model(ModelSpec(args.model, "auto", "float32"), lambda f, m: log(f"  {m}"))
        out = args.run(model, args, command)
    except (ValueError, RuntimeError) as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("stopped: nothing was saved (the files in assets/ are as they were)")
        return 130
    log(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
