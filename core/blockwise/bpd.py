"""Blockwise Parallel Decoding with trained heads and draft refinement (docs/methods.md, "Blockwise").

Stern et al.: besides the base LM head (token t+1 from h_t), m = k - 1 heads predict
tokens t+2..t+k from the same h_t. A step drafts a block, one target forward over it
gives the base model's own token at every block position, the longest matching prefix
is accepted plus the base's token at the first mismatch (>= 1 token per forward), and
that forward's hidden state at the last accepted position is the next step's h_t
(predict and verify share one call). Block efficiency = tokens per target forward.

Kim et al.'s refinement: the heads' top-k lattice rescored with an n-gram LM
(``bpd-ngram``: global rescoring of every path) or a small neural LM (``bpd-neural``:
local rescoring by beam search; the target's first e layers + exit head, or a draft
model sharing the tokenizer); the p best drafts, plain BPD's among them, are verified
in one tree forward and the longest accepted prefix kept (``core.blockwise.refine``).

The step loop is speculative decoding's (``core.speculative.speculate``): ``BlockDrafter`` is a
``DraftSource`` whose tokens are labelled by head and whose steps add a ``BlockStep``. At
T = 0 the rule is greedy, so output equals ``ar``; at T > 0 the drafts are fixed tokens
and the ``match`` rule (draw from p, accept the equal child) keeps it lossless.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import torch

from core.heads.analysis import oracle_block
from core.blockwise.ngram import NgramLM, ngram_path
from core.blockwise.refine import (
    Lattice,
    NeuralLM,
    choose_paths,
    global_rescore,
    head_lattice,
    lattice_top,
    local_rescore,
)
from core.config import GenerationConfig, SamplingConfig
from core.engine import Engine, last, make_engine, require
from core.heads import HeadInfo, Heads, bpd_heads_path, fitted_exit_layer
from core.heads.modules import Projection
from core.heads.vocab import draft_projection
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.engine.sync import upload
from core.sampling import make_generator
from core.speculative import DraftChoice, DraftTree, TreeTopology, make_draft_lm, speculate
from core.speculative.drafts import DraftDefaults, DraftSettings, Root, draft_probs, q_of_tokens
from core.speculative.rules import rule as rule_named
from core.text import encode_prompt
from core.trace import BlockStep

REFINEMENTS = ("none", "ngram", "neural")
MAX_LATTICE_PATHS = 4096  # global rescoring scores topk^(k-1) paths per step in Python
BLOCK = 3  # the default block size k: k = 3 beat k = 4 on held-out prompts (docs/methods.md, "Blockwise")


def load_bpd_heads(model: LoadedModel, engine: Engine, k: int) -> tuple[torch.nn.ModuleList, str | None]:
    """The shipped heads for block size k, or untrained ones (they draft the plain base token) and a notice."""
    require(type(engine), "supports_layer_ranges", "BPD heads")
    path = bpd_heads_path(model.key, k)
    if path.is_file():
        return Heads.load(path, model.device, model.dtype).heads, None
    untrained = Heads.new(HeadInfo("bpd", model.key, engine.n_layers, k - 1, model.config.hidden_size))
    untrained.heads.to(model.device, model.dtype).eval().requires_grad_(False)
    return untrained.heads, (
        f"No trained BPD heads for {model.key} with k = {k} ({path.name}); untrained heads draft "
        f"almost nothing. Train them with `python -m core.train heads --k {k}`."
    )


def bpd_heads_info(model_key: str, k: int) -> HeadInfo | None:
    """How the shipped heads for block size k were made, with their recorded head analysis (None: none)."""
    path = bpd_heads_path(model_key, k)
    return Heads.load(path, torch.device("cpu"), torch.float32).info if path.is_file() else None


def load_ngram(model: LoadedModel) -> tuple[NgramLM, str | None]:
    """A trigram LM with the shipped self-distilled counts for this model, if any."""
    lm = NgramLM(model.model.lm_head.out_features)
    path = ngram_path(model.key)
    if not path.is_file():
        return lm, (
            f"No self-distilled n-gram text for {model.key} ({path.name}); the n-gram LM learns from this "
            "run's context only. Make it with `python -m core.train ngram`."
        )
    for seq in json.loads(path.read_text())["sequences"]:
        lm.add(seq)
    return lm, None


def make_neural_lm(
    model: LoadedModel, engine: Engine, choice: DraftChoice, max_len: int
) -> tuple[NeuralLM, str | None]:
    """The neural LM of local rescoring: the same self / model drafts as speculative decoding's."""
    if choice.draft not in ("self", "model"):
        raise ValueError(f"Unknown neural LM {choice.draft!r} for rescoring; use self or model.")
    lm, notice = make_draft_lm(model, engine, choice, max_len)
    return NeuralLM(lm), notice


class BlockDrafter(DraftDefaults):
    """The BPD draft source: a block from the heads on h_t (plus, when refining, the p best lattice paths as a
    trie); tokens labelled by head; a BlockStep per step; the oracle block efficiency at the end. Plain BPD
    stays on the device (its lattice is read with the step); refinement reads the lattice to rescore it."""

    def __init__(
        self,
        engine: Engine,
        heads: torch.nn.ModuleList,
        *,
        refine: str,
        topk: int,
        paths: int,
        alpha: float,
        ngram: NgramLM | None = None,
        neural: NeuralLM | None = None,
        project: Projection | None = None,
    ) -> None:
        self.engine, self.heads, self.refine = engine, heads, refine
        self.project = project or engine.logits
        self.topk, self.paths, self.alpha, self.ngram, self.neural = topk, paths, alpha, ngram, neural
        self.name = f"{len(heads)} BPD heads" + (f", {refine} rescoring" if refine != "none" else "")
        self.name += ", reduced draft vocabulary" if project is not None else ""
        self.prompt_len: int | None = None
        self.context: list[int] = []
        self.history: list[tuple[int, list[list[int]]]] = []  # per step: output offset, lattice rows
        self.last: tuple | None = None

    def head_logits(self, hidden: torch.Tensor | None) -> torch.Tensor:
        """[m, V]: head i's logits for token t+1+i from h_t [1, 1, H], all heads through the LM head in one
        matmul (a one-token prompt has no h_t yet: zeros, and untrained heads then draft the base's token)."""
        if hidden is None:
            hidden = torch.zeros(1, 1, self.engine.decoder.norm.weight.shape[0], device=self.engine.device)
        self.forwards += 1
        return self.project(torch.cat([head(hidden) for head in self.heads], dim=1))[0]

    def _catch_up(self, root: Root) -> None:
        """The n-gram LM and a separate neural LM learn what was committed since the last step."""
        new = root.ids[len(self.context) : -1]
        if self.prompt_len is None:
            self.prompt_len = len(root.ids)
            if self.ngram is not None:
                self.ngram.add(new)
            if self.neural is not None:
                self.neural.prefill(root.ids)
        else:
            if self.ngram is not None:
                self.ngram.add(new, self.context)
            if self.neural is not None:
                self.neural.accept(new[1:])
        self.context = root.ids[:-1]

    def propose(self, root: Root) -> DraftTree:
        self._catch_up(root)
        settings = root.settings
        logits = self.head_logits(last(root.hidden))
        q = draft_probs(logits, settings.sampling)  # [m, V]: head i's q at depth i - 1
        if self.refine == "none":
            return self._block(root, logits, q)
        lattice = head_lattice(logits, self.topk)  # the step's read before verification
        if self.refine == "ngram":
            context = root.ids
            scored = global_rescore(lattice, lambda toks: self.ngram.logprob(context, toks), self.alpha)
        else:
            self.neural.begin(root.token)
            scored = local_rescore(lattice, self.neural.next_logp, self.alpha, self.paths)
        chosen = choose_paths(lattice, scored, self.paths)
        topology, tokens, _ = TreeTopology.from_paths(root.token, chosen)
        device = self.engine.device
        ids = upload(tokens, device)
        internal = [topology.node_depth[n] for n in range(topology.size) if topology.children(n)]
        q_nodes = q.index_select(0, upload(internal, device))  # BFS: the internal nodes come first
        self.last = (lattice, chosen, scored)
        self.history.append((len(self.context) + 1, lattice.tokens))
        return DraftTree(topology, ids, q_of_tokens(topology, ids, q_nodes), q_nodes)

    def _block(self, root: Root, logits: torch.Tensor, q: torch.Tensor) -> DraftTree:
        """Plain BPD: each head's argmax as a chain, on the device; the lattice goes with the step's read."""
        ids_top, logq = lattice_top(logits, self.topk)
        topology = TreeTopology.full(1, ids_top.shape[0])
        ids = torch.cat([upload([root.token], self.engine.device), ids_top[:, 0]])
        trace = torch.cat([ids_top.double().flatten(), logq.double().exp().flatten()])
        self.last = None
        return DraftTree(topology, ids, q_of_tokens(topology, ids, q), q, trace=trace)

    def _lattice_seen(self, seen) -> tuple[Lattice, list[list[int]], list]:
        """The step's lattice, chosen drafts and scores: kept at ``propose`` when refining, else read with the
        step (``DraftTree.trace``)."""
        if self.last is not None:
            return self.last
        m = len(self.heads)
        ids, probs = seen.trace[: m * self.topk], seen.trace[m * self.topk :]
        rows = [[int(x) for x in ids[i * self.topk : (i + 1) * self.topk]] for i in range(m)]
        logq = [[math.log(max(x, 1e-45)) for x in probs[i * self.topk : (i + 1) * self.topk]] for i in range(m)]
        self.history.append((len(self.context) + 1, rows))
        return Lattice(rows, logq), [[row[0] for row in rows]], []

    def labels(self, tree: DraftTree, seen) -> list[str]:
        return [f"head {i}" for i in range(1, len(seen.nodes))] + ["base"]

    def describe(self, step: int, tree: DraftTree, seen, tokenizer, t: float) -> list[BlockStep]:
        lattice, chosen, scored = self._lattice_seen(seen)
        rows = lattice.tokens
        ranks = [[rows[i].index(tok) for i, tok in enumerate(path)] for path in chosen]
        score_of = {tuple(s.tokens): s.score for s in scored}
        plain = sum(row[0] for row in lattice.logq)
        accepted = [seen.tokens[n] for n in seen.nodes[1:]]
        follows = next(i for i, p in enumerate(chosen) if p[: len(accepted)] == accepted)
        return [
            BlockStep(
                step=step,
                refine=self.refine,
                lattice_tokens=rows,
                lattice_texts=[[tokenizer.decode([x]) for x in row] for row in rows],
                lattice_q=[[math.exp(x) for x in row] for row in lattice.logq],
                paths=ranks,
                scores=[score_of.get(tuple(p), plain) for p in chosen],
                accepted_path=follows,
                accepted=len(accepted),
                final_text=tokenizer.decode([seen.final]),
                t=t,
            )
        ]

    def summary(self, output: list[int]) -> dict:
        return {**super().summary(output), "oracle_block_efficiency": self.oracle_block_efficiency(output)}

    def oracle_block_efficiency(self, output: list[int]) -> float:
        """Mean over steps of the block the best lattice path would have committed (``oracle_block``)."""
        blocks = []
        for offset, rows in self.history:
            start = offset - self.prompt_len  # the output index of head 1's token
            if start < len(output):
                blocks.append(oracle_block(rows, output[start:]))
        return sum(blocks) / max(len(blocks), 1)


@excluding_consumer_time
def run_bpd(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str = "bpd",
    block: int = BLOCK,
    refine: str = "none",
    topk: int = 4,
    paths: int = 3,
    alpha: float = 0.5,
    draft: str = "self",
    layer: int | None = None,
    draft_model: LoadedModel | None = None,
    draft_vocab: str = "reduced",
) -> Iterator:
    """Yield RunStarted, per step a TreeStep, a BlockStep and a StepCommitted, then RunFinished
    (extras: oracle_block_efficiency). ``block`` is the block size k (base + k - 1 heads); the heads
    (and a self-draft neural LM) project onto ``draft_vocab``: reduced or full."""
    check_options(block, refine, topk, paths, alpha)
    k = block
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    layer = fitted_exit_layer(model.config.num_hidden_layers, layer)
    rule = "greedy" if gen.sampling.greedy else "match"
    project, vocab = draft_projection(model, draft_vocab)
    options = {"block": k, "refine": refine, "rule": rule, "draft_vocab": draft_vocab}
    if refine != "none":
        options.update(topk=topk, paths=paths, alpha=alpha)
    if refine == "neural":
        options.update(draft=draft, layer=layer)
    rec = Recorder(name, model, prompt, prompt_ids, gen, options=options)
    yield rec.started()
    max_len = len(prompt_ids) + gen.max_new_tokens + 1 + paths * (k - 1) + 1
    engine = make_engine(model, batch=1, max_len=max_len)
    heads, notice = load_bpd_heads(model, engine, k)
    notices = [notice]
    ngram = neural = None
    if refine == "ngram":
        ngram, note = load_ngram(model)
        notices.append(note)
    elif refine == "neural":
        neural, note = make_neural_lm(model, engine, DraftChoice(draft, layer, draft_model, draft_vocab), max_len)
        notices.append(note)
    for note in filter(None, notices):
        yield rec.notice(note)
    drafter = BlockDrafter(
        engine, heads, refine=refine, topk=topk, paths=paths, alpha=alpha, ngram=ngram, neural=neural, project=project
    )
    settings = DraftSettings(TreeTopology.full(1, k - 1), rule_named(rule), gen.sampling, make_generator(gen.sampling.seed, model.device))
    yield from speculate(rec, engine, drafter, settings)


def check_options(k: int, refine: str, topk: int, paths: int, alpha: float) -> None:
    if not 2 <= k <= 9:
        raise ValueError(f"The block size k must be between 2 and 9 (base + k - 1 heads), got {k}.")
    if refine not in REFINEMENTS:
        raise ValueError(f"Unknown draft refinement {refine!r}; use {', '.join(REFINEMENTS)}.")
    if not 1 <= topk <= 16:
        raise ValueError(f"The lattice keeps each head's top-k tokens: choose top-k between 1 and 16, got {topk}.")
    if not 1 <= paths <= 16:
        raise ValueError(f"The number of drafts verified per step must be between 1 and 16, got {paths}.")
    if not 0.0 <= alpha <= 10.0:
        raise ValueError(f"The LM weight alpha must be between 0 and 10, got {alpha}.")
    if refine == "ngram" and topk ** (k - 1) > MAX_LATTICE_PATHS:
        raise ValueError(
            f"n-gram rescoring scores every lattice path: top-k {topk} over {k - 1} heads is {topk ** (k - 1):,} "
            f"paths per step, over the limit of {MAX_LATTICE_PATHS:,}: lower top-k or k."
        )
