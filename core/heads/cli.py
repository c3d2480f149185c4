"""``python -m core.train``: train and measure heads by self-distillation, one function per subcommand.

    python -m core.train exit-head --model embedded --layer 8 [--steps 300] [--seed 0] [--samples 8]
    python -m core.train heads --model embedded --k 4 [--samples 8]
    python -m core.train hit-rates --model embedded
    python -m core.train ngram --model embedded

Progress goes to stderr; a head file records the command, seed, loss curve and held-out figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.blockwise.ngram import ngram_path
from core.config import ModelSpec
from core.heads.data import distill_sequences, log
from core.heads.measure import hit_rate_path, layer_hit_rates
from core.heads.modules import bpd_heads_path, check_exit_layer, exit_head_path
from core.heads.training import TrainingConfig, train_bpd_heads, train_exit_head
from core.models import LoadedModel, load_model
from core.prompts import is_held_out


def exit_head(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    check_exit_layer(model.config.num_hidden_layers, args.layer, "--layer")
    heads = train_exit_head(model, args.layer, _training(args, command))
    return _save(heads, Path(args.out) if args.out else exit_head_path(model.key, args.layer))


def bpd_heads(model: LoadedModel, args: argparse.Namespace, command: str) -> Path:
    heads = train_bpd_heads(model, args.k, _training(args, command))
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
    _trainer(
        sub,
        "exit-head",
        "an exit head at layer e (self-draft, SPEED)",
        ("--layer", 8, True),
        300,
        "assets/heads/<model>-exit-L<layer>.pt",
    ).set_defaults(run=exit_head)
    _trainer(
        sub,
        "heads",
        "k - 1 Blockwise Parallel Decoding heads on the last hidden state",
        ("--k", 4, False),
        600,
        "assets/heads/<model>-bpd-k<k>.pt",
    ).set_defaults(run=bpd_heads)
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
    log(f"saved {out}")
    return 0
