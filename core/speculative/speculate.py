"""Speculative decoding with draft chains and trees (docs/methods.md, "Draft trees").

One step, in the four named calls of the Medusa step loop:
    propose  - the draft source builds a tree of depth L, k children per node, drawn
               from q by the rule's own scheme (``core.speculative.verify.draw_children``);
    verify   - one target forward over the whole tree with the tree attention mask
               (self-draft: layers [e, L) only, on the draft's hidden states);
    evaluate - walk from the root: at each node the rule accepts at most one child
               (``core.speculative.verify.verify_node``); stop with a residual draw after a
               rejection, or a bonus token drawn from p at a leaf (greedy on an accelerator: every
               node at once, ``greedy_walk``);
    update   - the KV cache keeps the accepted path only (``engine.keep``).
At temperature 0 every rule is the greedy rule, so output equals ``ar`` token for token.

Method names: ``spec`` (single chain, self-draft, Leviathan et al.: rrs with k = 1),
``pld`` (single chain from prompt lookup), ``rrs``, ``rrsw``, ``spechub`` (trees). ``speculate``
is the step loop itself, shared with Blockwise Parallel Decoding (``core.blockwise``); it takes any
``DraftSource`` (``core.speculative.drafts``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from core.config import GenerationConfig, SamplingConfig
from core.engine import Engine, EngineOutput, make_engine, prefill
from core.engine.cost import device_curve
from core.heads import fitted_exit_layer
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import draw_one, make_generator, one_hot_argmax, target_probs
from core.speculative.copies import PromptLookup
from core.speculative.drafts import (
    DraftChoice,
    DraftSource,
    DraftTree,
    LevelDrafter,
    default_depth,
    make_draft_lm,
)
from core.speculative.eagle import DynamicTree, make_feature_drafter
from core.speculative.expected import EXACT_RULES, ExpectedTally, expected_acceptance
from core.speculative.tree import TreeTopology
from core.speculative.verify import Walk, greedy_tree, verify_node
from core.text import encode_prompt
from core.trace import TreeStep


def verify_tree(engine: Engine, tree: DraftTree) -> EngineOutput:
    """One target forward over every node of the tree: logits [1, N, V], last hidden states [1, N, H]."""
    topo, base = tree.topology, engine.length
    positions = torch.tensor([topo.node_depth], device=engine.device) + base
    if tree.hidden is not None:
        out = engine.forward(
            hidden_in=tree.hidden,
            layers=range(tree.reuse_layers, engine.n_layers),
            tree_mask=topo.mask,
            positions=positions,
        )
    else:
        out = engine.forward(
            torch.tensor([tree.tokens], device=engine.device), tree_mask=topo.mask, positions=positions
        )
    return out


def walk_tree(tree: DraftTree, logits: torch.Tensor, rule: str, sampling: SamplingConfig, rng: torch.Generator) -> Walk:
    """Apply the rule from the root down; the emitted tokens are the path's children plus the final token."""
    node = 0
    nodes, examined, p_at = [0], {}, {}
    while True:
        p_at[node] = target_probs(logits[node], sampling)
        kids = tree.candidates(node)
        if not kids:
            final = int(p_at[node].argmax()) if sampling.greedy else draw_one(p_at[node], rng)
            return Walk(nodes, final, "bonus", examined, p_at)
        verdict = verify_node(rule, p_at[node], tree.q[node], [tree.tokens[c] for c in kids], rng)
        examined[node] = len(kids) if verdict.accepted is None else verdict.accepted + 1
        if verdict.accepted is None:
            return Walk(nodes, verdict.residual_token, "resampled", examined, p_at)
        node = kids[verdict.accepted]
        nodes.append(node)


def evaluate(tree: DraftTree, logits: torch.Tensor, rule: str, sampling: SamplingConfig, rng: torch.Generator) -> Walk:
    """The step's third call: the rule's walk, or on an accelerator at temperature 0 ``greedy_walk``, which reads
    the device once per step instead of once per visited node. On this CPU the walk is the faster (380-650 µs
    against 770-2,400 µs for trees of 3-31 nodes over 49,152 tokens): it takes the argmax of the 2-3 nodes it
    visits, ``greedy_walk`` that of every node."""
    if rule == "greedy" and logits.device.type != "cpu":
        return greedy_walk(tree, logits)
    return walk_tree(tree, logits, rule, sampling, rng)


def greedy_walk(tree: DraftTree, logits: torch.Tensor) -> Walk:
    """``walk_tree`` at temperature 0 with every node evaluated at once on the device (``greedy_tree``) and
    one read back instead of one per visited node: the same path, final token and colouring."""
    topo, device = tree.topology, logits.device
    offered = [True] * topo.size
    for node in range(topo.size):
        for c in topo.children(node)[len(tree.candidates(node)) :]:
            offered[c] = False
    tokens, parent = torch.tensor(tree.tokens, device=device), torch.tensor(topo.parent, device=device)
    on_path, best = greedy_tree(logits, tokens, parent, topo.mask.to(device), torch.tensor(offered, device=device))
    nodes = [i for i, accepted in enumerate(on_path) if accepted]
    examined = {a: tree.candidates(a).index(b) + 1 for a, b in zip(nodes, nodes[1:], strict=False)}
    last, kids = nodes[-1], tree.candidates(nodes[-1])
    if kids:
        examined[last] = len(kids)
    p = dict(zip(nodes, one_hot_argmax(logits[nodes]), strict=True))
    return Walk(nodes, best[last], "resampled" if kids else "bonus", examined, p)


def tree_event(step: int, rule: str, tree: DraftTree, walk: Walk, tokenizer, t: float) -> TreeStep:
    topo = tree.topology
    status = ["unvisited"] * topo.size
    status[0] = "root"
    for parent, seen in walk.examined.items():
        for c in list(topo.children(parent))[:seen]:
            status[c] = "rejected"
    for n in walk.nodes[1:]:
        status[n] = "accepted"
    p_tok, q_tok = [1.0] * topo.size, [1.0] * topo.size
    for n in range(1, topo.size):
        par = topo.parent[n]
        q_tok[n] = float(tree.q[par][tree.tokens[n]])
        p_tok[n] = float(walk.p[par][tree.tokens[n]]) if par in walk.p else -1.0  # -1: p never computed there
    return TreeStep(
        step=step,
        rule=rule,
        tokens=list(tree.tokens),
        texts=[tokenizer.decode([x]) for x in tree.tokens],
        parents=list(topo.parent),
        depths=list(topo.node_depth),
        status=status,
        p_token=p_tok,
        q_token=q_tok,
        accepted_path=list(walk.nodes),
        final_token=walk.final_token,
        final_text=tokenizer.decode([walk.final_token]),
        final_kind=walk.final_kind,
        t=t,
    )


@excluding_consumer_time
def run_speculative(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str = "rrs",
    rule: str = "rrs",
    k: int = 2,
    depth: int | None = None,
    draft: str = "self",
    layer: int | None = None,
    draft_model: LoadedModel | None = None,
    draft_vocab: str = "reduced",
) -> Iterator:
    """Yield RunStarted, then per step a TreeStep and a StepCommitted, then RunFinished. ``draft``: self,
    model, lookup or eagle; ``depth``: None for the draft's own default (``DEPTHS``); ``draft_vocab``: reduced
    or full (what the self-draft's exit head projects onto)."""
    depth = default_depth(draft) if depth is None else depth
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    layer = fitted_exit_layer(model.config.num_hidden_layers, layer)
    if rule == "spechub" and k != 2:  # checked before T = 0 turns every rule greedy
        raise ValueError("SpecHub verifies pairs: set k = 2.")
    topo = TreeTopology.full(k, depth)
    rule = "greedy" if gen.sampling.greedy else rule
    if draft == "lookup" and k != 1:
        raise ValueError(f"The {draft} draft is a single chain: set k = 1.")
    options = {"rule": rule, "k": k, "depth": depth, "draft": draft, "layer": layer, "draft_vocab": draft_vocab}
    rec = Recorder(name, model, prompt, prompt_ids, gen, options=options)
    yield rec.started()
    max_len = len(prompt_ids) + gen.max_new_tokens + topo.size + 1
    engine = make_engine(model, batch=1, max_len=max_len)
    choice = DraftChoice(draft, layer, draft_model, draft_vocab)
    source, notice = make_draft_source(model, engine, choice, max_len)
    if notice:
        yield rec.notice(notice)
    yield from speculate(rec, engine, source, topo, rule, gen.sampling)


class StepCosts:
    """What a run's steps cost and how well the draft guessed: seconds drafting and verifying, draft
    forwards (tree levels), first-token agreement (the draft's top-1 at the root = the target's), and
    each rule's exact acceptance at every verified node when sampling (``core.speculative.expected``)."""

    def __init__(self, sampling: SamplingConfig, rule: str) -> None:
        self.draft_s = self.verify_s = 0.0
        self.levels = self.agree = self.steps = 0
        self.tally = ExpectedTally() if not sampling.greedy and rule in EXACT_RULES else None

    def add(self, tree: DraftTree, logits: torch.Tensor, walk: Walk, draft_s: float, verify_s: float) -> None:
        self.draft_s, self.verify_s = self.draft_s + draft_s, self.verify_s + verify_s
        self.levels += tree.topology.depth
        self.steps += 1
        if 0 in tree.q:
            self.agree += int(tree.q[0].argmax()) == int(logits[0].argmax())

    def exact(self, tree: DraftTree, walk: Walk) -> float:
        """Tally each rule's exact acceptance at the step's verified nodes; returns the seconds it took (a
        measurement, not decoding: the caller leaves it off the run's clock)."""
        if self.tally is None:
            return 0.0
        t0 = time.perf_counter()
        for node in walk.examined:
            k = len(tree.candidates(node))
            self.tally.add(tree.topology.node_depth[node], expected_acceptance(walk.p[node], tree.q[node], k))
        return time.perf_counter() - t0

    def summary(self) -> dict:
        out = {
            "draft_seconds": self.draft_s,
            "verify_seconds": self.verify_s,
            "draft_levels": self.levels,
            "first_token_agreement": self.agree / self.steps if self.steps else None,
        }
        if self.tally is not None:
            out["expected_acceptance"] = self.tally.summary()
        return out


def make_draft_source(
    model: LoadedModel, engine: Engine, choice: DraftChoice, max_len: int
) -> tuple[DraftSource, str | None]:
    """``lookup``, ``eagle`` (the feature head, k-ary trees), or a ``LevelDrafter`` over ``make_draft_lm``;
    returns (source, notice)."""
    if choice.draft == "lookup":
        return PromptLookup(model.model.lm_head.out_features, curve=device_curve(model)), None
    if choice.draft == "eagle":
        return make_feature_drafter(model, engine, max_len), None
    lm, notice = make_draft_lm(model, engine, choice, max_len)
    return LevelDrafter(lm), notice


def speculate(
    rec: Recorder, engine: Engine, source: DraftSource, topo: TreeTopology | None, rule: str, sampling: SamplingConfig
) -> Iterator:
    """The step loop every draft-and-verify method shares: prefill, then per step the four calls
    propose (the source's tree; ``topo`` None: the source shapes it, e.g. EAGLE-2's dynamic trees) /
    verify (one target forward) / evaluate (the rule's walk) / update (keep the accepted path; tell
    the source).

    Per step it yields a TreeStep, the source's own events (``describe``) and a StepCommitted whose
    per-token sources come from ``labels``; then RunFinished with the source's ``summary`` and the
    run's ``StepCosts``.
    """
    model, prompt_ids = rec.model, rec.prompt_ids
    rng = make_generator(sampling.seed, model.device)
    source.prefill(prompt_ids, prefill(engine, prompt_ids))
    root, costs = prompt_ids[-1], StepCosts(sampling, rule)
    while not rec.done:
        t0 = time.perf_counter()
        tree = source.propose(root, topo, rule, sampling, rng)
        t1 = time.perf_counter()
        verified = verify_tree(engine, tree)
        t2 = time.perf_counter()
        walk = evaluate(tree, verified.logits[0], rule, sampling, rng)
        engine.keep([engine.length + n for n in walk.nodes])
        source.accept(tree, walk.nodes, verified.last_hidden[:, walk.nodes])
        emitted = [tree.tokens[n] for n in walk.nodes[1:]] + [walk.final_token]
        elapsed = time.perf_counter() - t0
        costs.add(tree, verified.logits[0], walk, t1 - t0, t2 - t1)
        rec.clock.exclude(costs.exact(tree, walk))
        step, now = rec.steps + 1, rec.clock.now()
        yield tree_event(step, rule, tree, walk, model.tokenizer, now)
        yield from source.describe(step, tree, walk, model.tokenizer, now)
        yield rec.commit(
            emitted,
            elapsed,
            drafted=tree.topology.depth,
            accepted=len(walk.nodes) - 1,
            sources=source.labels(tree, walk),
        )
        root = walk.final_token
    yield rec.finished({**source.summary(rec.output), **costs.summary()})


@excluding_consumer_time
def run_eagle(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str = "eagle",
    depth: int = DynamicTree.depth,
    topk: int = DynamicTree.topk,
    max_nodes: int = DynamicTree.max_nodes,
    lookup: int = DynamicTree.lookup,
) -> Iterator:
    """Yield RunStarted, then per step a TreeStep and a StepCommitted, then RunFinished. ``lookup``: tokens of
    the chain copied from the context grafted on each tree (0: the head's tree alone)."""
    shape = DynamicTree(depth, topk, max_nodes, lookup)
    shape.check()
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    rule = "greedy" if gen.sampling.greedy else "match"
    rec = Recorder(name, model, prompt, prompt_ids, gen, options={"rule": rule, **vars(shape)})
    yield rec.started()
    max_len = len(prompt_ids) + gen.max_new_tokens + max_nodes + 1
    engine = make_engine(model, batch=1, max_len=max_len)
    source = make_feature_drafter(model, engine, max_len, shape)
    yield from speculate(rec, engine, source, None, rule, gen.sampling)
