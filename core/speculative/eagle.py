"""EAGLE: a feature-level draft (``core.heads.feature``) with EAGLE-2's dynamic draft trees.

The draft keeps its own KV cache of pairs (f_i, x_{i+1}) with the target's true features f. Per step:
    propose - feed the pairs the last step verified (true features from the verify forward), ending
              with (f_{n-1}, root); its output f^_n gives q at the root. Then either
              * a full k-ary tree, children drawn from q by the rule (``spec``/``rrs``/``rrsw``/
                ``spechub`` with ``--draft eagle``), or
              * a dynamic tree (method ``eagle``): every depth, the K nodes of highest cumulative
                draft confidence c(u) = prod q along the path are expanded (one draft forward of K
                tokens, tree mask), each into its top-K children, while the frontier's total
                confidence (a bound on what the level can add) exceeds a level's draft cost
                (``worth_a_level``); after at most ``depth`` levels the nodes are
                ranked by c and the tree keeps the n best, n maximising the predicted tokens per
                unit of time  (1 + sum_{kept} c(u)) / (D + v(n + 1)),  D the step's draft cost and v
                the verify-cost curve (both in target forwards of one token, this device); with
                ``lookup`` > 0 a chain copied from the context (the tokens after the latest earlier
                match of its last n-gram, ``ContextIndex``) is grafted on the tree first, its node j
                ranked by c = a_0 ... a_j, the rates a learnt over the run (``ChainRate``), so the
                same ranking decides whether copying pays;
    verify / evaluate / update - the shared step loop (``core.speculative.speculate``); the dynamic
              tree is verified greedily at T = 0 and by ``match`` (draw from p, accept the equal
              child) at T > 0, both lossless;
    accept  - the accepted path's true features become the next step's pairs (the tree's draft
              slots are overwritten, never committed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from core.config import SamplingConfig
from core.engine import Engine, llama_engine_class, make_engine, require
from core.engine.cost import best_size, device_curve
from core.heads.feature import FeatureHead, shared_feature_head
from core.heads.vocab import load_draft_vocab, reduced_projection
from core.models import LoadedModel
from core.speculative.copies import ChainRate, ContextIndex, graft_chain, one_hot
from core.speculative.drafts import DraftDefaults, DraftTree, draft_probs, grow_level
from core.speculative.tree import MAX_TREE_NODES, TreeTopology
from core.speculative.verify import Walk

MAX_DYNAMIC_NODES = 64  # verified per step at most (v(n) is measured up to 64)
MAX_CHAIN = 16  # tokens of a copied chain at most


@dataclass(frozen=True)
class DynamicTree:
    """EAGLE-2 tree shape: ``depth`` levels, ``topk`` nodes expanded per level into ``topk`` children each,
    at most ``max_nodes`` verified (root included)."""

    depth: int = 2  # measured on the suite's train split (CPU, 64 tokens, T = 0): depth 2, top-4 1.02x ar,
    topk: int = 4  # depth 2, top-8 0.97x, depth 4 (with ``worth_a_level``), top-8 0.90x
    max_nodes: int = 48
    lookup: int = 8  # tokens of a chain copied from the context (``ContextIndex``) grafted on the tree (0: none);
    # held out (CPU, T = 0, each against its own ar): 0 -> 1.10x, 4 / 8 / 12 -> 1.16x / 1.14x / 1.18x

    def check(self) -> None:
        if not 1 <= self.depth <= 12:
            raise ValueError(f"The dynamic tree's depth must be between 1 and 12, got {self.depth}.")
        if not 1 <= self.topk <= 16:
            raise ValueError(f"The dynamic tree expands 1 to 16 nodes per level, got top-k {self.topk}.")
        if not 2 <= self.max_nodes <= MAX_DYNAMIC_NODES:
            raise ValueError(
                f"The dynamic tree verifies 2 to {MAX_DYNAMIC_NODES} nodes per step, got {self.max_nodes}."
            )
        if not 0 <= self.lookup <= MAX_CHAIN:
            raise ValueError(f"The copied chain holds 0 to {MAX_CHAIN} tokens, got {self.lookup}.")


def worth_a_level(frontier_confidence: list[float], level_cost: float) -> bool:
    """Whether to draft one level deeper. Nodes of one depth are mutually exclusive (at most one is on the
    accepted path), so the level's children add at most sum_u c(u) over the frontier u expected tokens; it
    is drafted only if that bound exceeds the level's cost (the last level's draft time, in target forwards
    of one token: a step yields about one token per forward)."""
    return sum(frontier_confidence) > level_cost


class FeatureDrafter(DraftDefaults):
    """The EAGLE draft source (see the module docstring)."""

    def __init__(self, model: LoadedModel, head: FeatureHead, max_len: int, dynamic: DynamicTree | None = None) -> None:
        self.model, self.head, self.dynamic = model, head, dynamic
        engine = llama_engine_class(model.device)  # graph-captured on CUDA, like the target's
        self.engine = engine(head.net, batch=1, max_len=max_len + MAX_TREE_NODES)  # + a step's draft slots
        vocab = load_draft_vocab(model)
        self.project = reduced_projection(model, vocab) if vocab else make_engine(model, max_len=1).logits
        self.embed = model.model.model.embed_tokens
        self.vocab_size = model.model.lm_head.out_features
        self.curve = device_curve(model) if dynamic else None
        self.t1 = self.curve["seconds"][0] if self.curve else None
        size = f"{vocab.size:,}-token draft vocabulary" if vocab else "full vocabulary"
        layers = len(head.layers)
        self.name = f"EAGLE feature head ({layers} layer{'s' * (layers > 1)}, {size})"
        self.pending_f: torch.Tensor | None = None  # [1, m, H] true features not yet fed
        self.pending_x: list[int] = []  # the token after each (the root is appended at propose)
        self.forwards = 0
        self.sizes: list[int] = []
        chain = dynamic.lookup if dynamic else 0
        if chain:
            self.name += f" + a copied chain of up to {chain} tokens"
        self.context, self.rate = ContextIndex(), ChainRate(chain)
        self.chain: list[int] = []  # the step's copied chain
        self.copied: set[int] = set()  # the step's tree nodes only the chain proposed
        self.path: list[int] = []  # the tokens the last step accepted
        self.copied_accepted = 0

    def prefill(self, ids: list[int], hidden: torch.Tensor | None) -> None:
        H = self.model.config.hidden_size
        self.pending_f = hidden if hidden is not None else torch.zeros(1, 1, H, device=self.model.device)
        self.pending_x = list(ids[1:-1]) if hidden is not None else []
        self.context.extend(ids[:-1])

    def _draft(self, features: torch.Tensor, tokens: list[int], **where) -> torch.Tensor:
        """f^ of pairs (features [1, m, H], tokens): one forward of the draft layer."""
        x = torch.tensor([tokens], device=self.model.device)
        fused = self.head.fuse(features, self.embed(x))
        self.forwards += 1
        return self.engine.forward(hidden_in=fused, layers=self.head.layers, **where).last_hidden

    def _feed(self, root: int) -> torch.Tensor:
        """Feed and commit the pending true pairs, the last one (f_{n-1}, root); f^_n [1, 1, H]."""
        out = self._draft(self.pending_f, [*self.pending_x, root])
        self.engine.commit(out.shape[1])
        return out[:, -1:]

    def _q(self, features: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
        return draft_probs(self.project(features), sampling)

    def _level(self, tree_parents: list[int], slots: dict[int, int], nodes: list[int], feats, tokens, depth_of):
        """Forward ``nodes`` (not yet in the draft cache) with their parents' f^; returns their f^ [len, H]."""
        base, first = self.engine.length, len(slots)
        for i, node in enumerate(nodes):
            slots[node] = first + i
        mask = torch.zeros(len(nodes), first + len(nodes), dtype=torch.bool)
        for i, node in enumerate(nodes):
            u = node
            while u > 0:  # ancestors in the draft cache (the root's pair is committed)
                mask[i, slots[u]] = True
                u = tree_parents[u]
        positions = torch.tensor([[base - 1 + depth_of[n] for n in nodes]], device=self.model.device)
        parent_f = torch.stack([feats[tree_parents[n]] for n in nodes])[None]
        out = self._draft(parent_f, [tokens[n] for n in nodes], start=base + first, positions=positions, tree_mask=mask)
        return out[0]

    def propose(self, root: int, topo: TreeTopology | None, rule: str, sampling: SamplingConfig, rng) -> DraftTree:
        t0 = time.perf_counter()
        self.rate.update(self.chain, [*self.path, root])
        self.context.extend([root])
        f_root = self._feed(root)[0, 0]
        if self.dynamic:
            return self._dynamic(root, f_root, sampling, t0)
        return self._full(root, f_root, topo, rule, sampling, rng)

    def _full(self, root, f_root, topo: TreeTopology, rule, sampling, rng) -> DraftTree:
        """A k-ary tree level by level, children drawn from q by the rule; the leaves are not fed."""
        tree, feats, slots = DraftTree(topo, [root]), {0: f_root}, {}
        for d in range(topo.depth):
            level = topo.level(d)
            if d:
                out = self._level(list(topo.parent), slots, list(level), feats, tree.tokens, topo.node_depth)
                feats.update(zip(level, out, strict=True))
            grow_level(tree, level, self._q(torch.stack([feats[n] for n in level]), sampling), rule, rng)
        return tree

    def _dynamic(self, root: int, f_root: torch.Tensor, sampling: SamplingConfig, t0: float) -> DraftTree:
        """EAGLE-2: expand the ``topk`` most confident nodes per level, then keep the best n (``best_size``)."""
        shape = self.dynamic
        parents, tokens, depth, logc = [-1], [root], [0], [0.0]
        feats, slots, q_of = {0: f_root}, {}, {}
        frontier, level_start = [0], t0
        for d in range(shape.depth):
            if d:
                level_cost = (time.perf_counter() - level_start) / self.t1
                if not worth_a_level([math.exp(logc[u]) for u in frontier], level_cost):
                    break
                level_start = time.perf_counter()
                out = self._level(parents, slots, frontier, feats, tokens, depth)
                feats.update(zip(frontier, out, strict=True))
            q = self._q(torch.stack([feats[u] for u in frontier]), sampling)
            new = []
            top = torch.topk(q, shape.topk, dim=-1)  # one call for the whole level
            for u, qu, toks, probs in zip(frontier, q, top.indices.tolist(), top.values.tolist(), strict=True):
                q_of[u] = qu
                for tok, prob in zip(toks, probs, strict=True):
                    if prob <= 0:  # q has fewer than topk tokens
                        break
                    parents.append(u)
                    tokens.append(tok)
                    depth.append(d + 1)
                    logc.append(logc[u] + math.log(prob))
                    new.append(len(tokens) - 1)
            frontier = sorted(new, key=lambda n: -logc[n])[: shape.topk]
        copied = self._graft(parents, tokens, depth, logc, q_of)
        ranked = sorted(range(1, len(tokens)), key=lambda n: (-logc[n], depth[n], n))
        cost = (time.perf_counter() - t0) / self.t1
        confidence = [math.exp(logc[n]) for n in ranked]
        n = best_size(confidence, cost, self.curve, shape.max_nodes)
        self.sizes.append(n + 1)
        tree, index = self._subtree(ranked[:n], parents, tokens, depth, q_of)
        self.copied = {index[v] for v in copied if v in index}
        return tree

    def _graft(self, parents, tokens, depth, logc, q_of) -> list[int]:
        """The context's copied chain (``graft_chain``) with ``ChainRate``'s confidences; a node that gets a
        copied child and has no draft q gets a one-hot q on it (a deterministic draft)."""
        self.chain = self.context.continuation(self.dynamic.lookup) if self.dynamic.lookup else []
        added = graft_chain(self.chain, self.rate.confidence(len(self.chain)), parents, tokens, depth, logc)
        for v in added:
            q_of.setdefault(parents[v], one_hot(tokens[v], self.vocab_size))
        return added

    @staticmethod
    def _subtree(kept: list[int], parents, tokens, depth, q_of) -> tuple[DraftTree, dict[int, int]]:
        """The kept nodes (and, defensively, their ancestors) as a tree in BFS order, and each kept node's
        index in it."""
        keep = {0}
        for n in kept:
            while n not in keep:
                keep.add(n)
                n = parents[n]
        order = sorted(keep, key=lambda n: (depth[n], n))
        index = {n: i for i, n in enumerate(order)}
        topo = TreeTopology.from_parents([-1] + [index[parents[n]] for n in order[1:]])
        tree = DraftTree(topo, [tokens[n] for n in order])
        tree.q = {index[n]: q_of[n] for n in order if topo.children(index[n])}
        return tree, index

    def accept(self, tree: DraftTree, nodes: list[int], hidden: torch.Tensor) -> None:
        """The path's true features f(root), f(a_1), ..., f(a_m) and the tokens after them, a_1..a_m; the next
        root completes the last pair."""
        self.pending_f = hidden
        self.pending_x = self.path = [tree.tokens[n] for n in nodes[1:]]
        self.context.extend(self.path)
        self.copied_accepted += sum(n in self.copied for n in nodes[1:])

    def labels(self, tree: DraftTree, walk: Walk) -> list[str]:
        """``lookup`` for accepted tokens only the copied chain proposed, ``draft`` for the head's."""
        return ["lookup" if n in self.copied else "draft" for n in walk.nodes[1:]] + [walk.final_kind]

    def summary(self, output: list[int]) -> dict:
        out = {"draft_forwards": self.forwards}
        if self.sizes:
            out["mean_tree_nodes"] = sum(self.sizes) / len(self.sizes)
        if self.dynamic and self.dynamic.lookup:
            out["copied_tokens_accepted"] = self.copied_accepted
            out["copied_chain_rate"] = [round(h / t, 3) for h, t in zip(self.rate.hits, self.rate.tries, strict=True)]
        return out


def make_feature_drafter(
    model: LoadedModel, engine: Engine, max_len: int, dynamic: DynamicTree | None = None
) -> FeatureDrafter:
    require(type(engine), "supports_trees", "The EAGLE draft")
    head, _ = shared_feature_head(model)
    return FeatureDrafter(model, head, max_len, dynamic)


assert MAX_DYNAMIC_NODES <= MAX_TREE_NODES
