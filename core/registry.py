"""The method registry. Every method is a generator ``run(model, prompt, gen, **options) ->
Iterator[trace event]`` that lives in its family's package (``core.baselines``, ``core.speculative``,
``core.blockwise``, ``core.speed``, ``core.skeleton``); ``METHODS`` names them for the benchmark
and the app, so a new method appears everywhere once listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.baselines import run_ar, run_hf
from core.blockwise import run_bpd
from core.config import ModelLoadError
from core.eagle import run_eagle
from core.engine import EngineUnsupported
from core.skeleton import run_sgd, run_sot
from core.draft_trees import run_speculative
from core.speed import run_speed

# What a run can raise that is the user's to fix (bad prompt, settings or model); the
# message is one sentence, shown as is. ConfigError and InputError are ValueErrors.
RUN_ERRORS = (ValueError, ModelLoadError, EngineUnsupported)


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    fn: Callable
    description: str
    options: dict = field(default_factory=dict)  # keyword arguments of ``fn`` for this name
    tunable: tuple[str, ...] = ()  # the options a user may override (bench flags, page widgets)
    lossless: bool = True  # False: its answer differs from AR's by design (sot, sgd), so its quality is measured

    def run(self, model, prompt, gen, **overrides):
        """The method's event generator with its fixed options, overridden by the caller's."""
        return self.fn(model, prompt, gen, **{**self.options, **overrides})


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo("ar", "Autoregressive", run_ar, "One forward per token on the project's engine (KV cache)."),
        MethodInfo("hf", "transformers generate", run_hf, "transformers' own generate(), the reference baseline."),
        MethodInfo(
            "hf-pld",
            "transformers prompt lookup",
            run_hf,
            "transformers' generate with prompt_lookup_num_tokens: its own n-gram speculative decoding.",
            {"name": "hf-pld", "prompt_lookup_num_tokens": 6},
        ),
        MethodInfo(
            "hf-assisted",
            "transformers assisted generation",
            run_hf,
            "transformers' generate with assistant_model: its own speculative decoding with a separate draft model.",
            {"name": "hf-assisted"},
            ("draft_model",),
        ),
        MethodInfo(
            "spec",
            "Speculative (chain, self-draft)",
            run_speculative,
            "Single draft chain from the model's first layers + exit head; Leviathan et al. acceptance.",
            {"name": "spec", "rule": "rrs", "k": 1, "draft": "self"},
            ("depth", "layer", "draft", "draft_model", "draft_vocab"),
        ),
        MethodInfo(
            "pld",
            "Prompt lookup",
            run_speculative,
            "Single chain copied from the context after a matching n-gram; verified like spec.",
            {"name": "pld", "rule": "rrs", "k": 1, "draft": "lookup"},
            ("depth",),
        ),
        MethodInfo(
            "rrs",
            "Draft tree, RRS",
            run_speculative,
            "Draft tree (k children i.i.d. from q), recursive rejection sampling with replacement.",
            {"name": "rrs", "rule": "rrs", "k": 2, "draft": "self"},
            ("k", "depth", "layer", "draft", "draft_model", "draft_vocab"),
        ),
        MethodInfo(
            "rrsw",
            "Draft tree, RRS without replacement",
            run_speculative,
            "Draft tree (k distinct children), recursive rejection sampling without replacement.",
            {"name": "rrsw", "rule": "rrsw", "k": 2, "draft": "self"},
            ("k", "depth", "layer", "draft", "draft_model", "draft_vocab"),
        ),
        MethodInfo(
            "spechub",
            "Draft tree, SpecHub",
            run_speculative,
            "Binary draft tree whose pairs always hold the hub argmax q; SpecHub's optimal transport.",
            {"name": "spechub", "rule": "spechub", "k": 2, "draft": "self"},
            ("k", "depth", "layer", "draft", "draft_model", "draft_vocab"),
        ),
        MethodInfo(
            "eagle",
            "EAGLE (feature draft, dynamic tree)",
            run_eagle,
            "One decoder layer over the model's own features drafts; EAGLE-2's dynamic tree (the most confident "
            "nodes, as many as the verify-cost curve pays for) is verified in one forward.",
            {"name": "eagle"},
            ("depth", "topk", "max_nodes", "lookup"),
        ),
        MethodInfo(
            "bpd",
            "Blockwise parallel decoding",
            run_bpd,
            "k - 1 heads on the last hidden state draft a block; one forward verifies it and drafts the next.",
            {"name": "bpd", "refine": "none"},
            ("block", "draft_vocab"),
        ),
        MethodInfo(
            "bpd-ngram",
            "BPD, n-gram rescoring",
            run_bpd,
            "BPD whose heads' top-k lattice is rescored with an n-gram LM; the p best drafts verified as one tree.",
            {"name": "bpd-ngram", "refine": "ngram"},
            ("block", "topk", "paths", "alpha", "draft_vocab"),
        ),
        MethodInfo(
            "bpd-neural",
            "BPD, neural rescoring",
            run_bpd,
            "BPD whose lattice is rescored by a beam with a small neural LM (first layers + exit head, or a "
            "draft model); the p best drafts verified as one tree.",
            {"name": "bpd-neural", "refine": "neural"},
            ("block", "topk", "paths", "alpha", "layer", "draft", "draft_model", "draft_vocab"),
        ),
        MethodInfo(
            "speed",
            "SPEED pipeline",
            run_speed,
            "Layers split into stages; an early-exit guess of the next token enters the pipeline before the "
            "current token has left it; a wrong guess is flushed.",
            {"stages": 2},
            ("layer", "stages"),
        ),
        MethodInfo(
            "sot",
            "Skeleton-of-Thought",
            run_sot,
            "The model writes a skeleton of short points, then every point is expanded at once in one batch.",
            {},
            ("point_tokens",),
            lossless=False,
        ),
        MethodInfo(
            "sgd",
            "Skeleton graph decoding",
            run_sgd,
            "The skeleton's points form a DAG (dependencies, difficulty); each wave of ready points is decoded "
            "as a batch, parents' answers in the prompt, difficulty picks the model from a pool.",
            {},
            ("point_tokens", "layer", "pool_models"),
            lossless=False,
        ),
        MethodInfo(
            "sgd-noforward",
            "SGD without forwarding",
            run_sgd,
            "Skeleton graph decoding on the same waves, but a dependent point's prompt does not carry its parents' "
            "answers: what forwarding is worth, measured (bench: proxy log-likelihood beside sgd's).",
            {"name": "sgd-noforward", "forward": False},
            ("point_tokens", "layer", "pool_models"),
            lossless=False,
        ),
    ]
}


def get_method(name: str) -> MethodInfo:
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHODS[name]
