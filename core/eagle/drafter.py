"""EAGLE's draft source: the feature head (``core.eagle.head``) drafting EAGLE-2's dynamic trees (``core.eagle.tree``).

The draft keeps its own KV cache of pairs (f_i, x_{i+1}) with the target's true features f. Per step:
    propose - feed the pairs the last step committed (true features from the verify forward), ending with
              (f_{n-1}, root); its output f^_n gives q at the root. Then either
              * a full k-ary tree, children drawn from q by the rule (``spec``/``rrs``/``rrsw``/``spechub``
                with ``--draft eagle``), or
              * a dynamic tree (method ``eagle``), expanded on the device with fixed shapes: the root's top-K
                children, then at each of ``depth`` - 1 further levels the K candidates of highest cumulative
                draft confidence c(u) = prod q along the path (one draft forward of K tokens, tree mask) each
                expanded into its top-K children. One read brings the candidates to the host, which ranks
                them by c and keeps the n best, n maximising the predicted tokens per unit of time
                (1 + sum_{kept} c(u)) / (D + v(n + 1)), D the step's draft cost (its draft forwards times
                ``forward_cost``, the weights a draft forward reads over a target forward's: a pure function of
                the shapes, so the tree's size is one of the settings and the draft, not of a clock) and v the
                verify-cost curve (in target forwards of one token, this device); with ``lookup`` > 0 a chain copied from
                the context (``ContextIndex``) is grafted on the candidates first, its node j ranked by
                c = a_0 ... a_j, the rates a learnt over the run (``ChainRate``), so the same ranking decides
                whether copying pays;
    verify / evaluate / update - the shared step loop (``core.speculative.speculate``); the dynamic tree is
              verified greedily at T = 0 and by ``match`` (draw from p, accept the equal child) at T > 0, both
              lossless; the accepted path's true features become the next step's pairs (the tree's draft
              slots are overwritten, never committed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from core.config import GenerationConfig
from core.engine import Engine, lm_logits, llama_engine_class, make_engine, require
from core.engine.cost import best_size, device_curve
from core.engine.sync import host, upload
from core.eagle.head import FeatureHead, shared_feature_head
from core.eagle.tree import MAX_DYNAMIC_NODES, Candidates, DynamicTree
from core.heads.vocab import load_draft_vocab, reduced_projection
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import make_generator, uniforms
from core.speculative.copies import ChainRate, ContextIndex, graft_chain
from core.speculative.drafts import DraftDefaults, DraftSettings, DraftTree, Root, draft_probs, q_of_tokens
from core.speculative.rules import rule
from core.speculative.speculate import speculate
from core.speculative.tree import MAX_TREE_NODES, TreeTopology
from core.text import encode_prompt

class FeatureDrafter(DraftDefaults):
    """The EAGLE draft source (see the module docstring)."""

    def __init__(self, model: LoadedModel, head: FeatureHead, max_len: int, dynamic: DynamicTree | None = None) -> None:
        self.model, self.head, self.dynamic = model, head, dynamic
        self.device = model.device
        engine = llama_engine_class(model.device)  # graph-captured on CUDA, like the target's
        self.engine = engine(head.net, batch=1, max_len=max_len + MAX_TREE_NODES)  # + a step's draft slots
        vocab = load_draft_vocab(model)
        self.project = reduced_projection(model, vocab) if vocab else lm_logits(model)
        self.embed = model.model.model.embed_tokens
        self.vocab_size = model.model.lm_head.out_features
        self.curve = device_curve(model) if dynamic else None
        self.forward_cost = forward_cost(model, head, vocab.size if vocab else self.vocab_size)
        size = f"{vocab.size:,}-token draft vocabulary" if vocab else "full vocabulary"
        layers = len(head.layers)
        self.name = f"EAGLE feature head ({layers} layer{'s' * (layers > 1)}, {size})"
        self.sizes: list[int] = []
        chain = dynamic.lookup if dynamic else 0
        if chain:
            self.name += f" + a copied chain of up to {chain} tokens"
        self.context, self.rate = ContextIndex(), ChainRate(chain)
        self.chain: list[int] = []  # the step's copied chain
        self.copied: set[int] = set()  # the step's tree nodes only the chain proposed
        self.copied_accepted = 0

    def _draft(self, features: torch.Tensor, tokens: torch.Tensor, **where) -> torch.Tensor:
        """f^ of pairs (features [1, m, H], tokens [m]): one forward of the draft layer."""
        fused = self.head.fuse(features, self.embed(tokens[None]))
        self.forwards += 1
        return self.engine.forward(hidden_in=fused, layers=self.head.layers, **where).last_hidden

    def _feed(self, root: Root) -> torch.Tensor:
        """Feed and commit the pairs committed since the last step: true features f at ``root.fresh`` with the
        token after each, the last one (f_{n-1}, root); f^_n [1, H]."""
        if root.hidden is None:  # a one-token prompt: no feature yet
            features = torch.zeros(1, 1, self.model.config.hidden_size, device=self.device, dtype=self.model.dtype)
            after = [root.token]
        else:
            features, after = root.hidden, [*root.fresh[1:], root.token]
        out = self._draft(features, upload(after, self.device))
        self.engine.commit(out.shape[1])
        return out[0, -1:]

    def _q(self, features: torch.Tensor, settings: DraftSettings) -> torch.Tensor:
        return draft_probs(self.project(features), settings.sampling)

    def propose(self, root: Root) -> DraftTree:
        start = self.forwards
        self.rate.update(self.chain, [*root.fresh[1:], root.token])  # what the last step emitted
        self.context.extend(root.ids[len(self.context.tokens) :])
        f_root = self._feed(root)
        if self.dynamic:
            return self._dynamic(root, f_root, start)
        return self._full(root, f_root)

    def _full(self, root: Root, f_root: torch.Tensor) -> DraftTree:
        """A k-ary tree level by level, children drawn from q by the rule (all on the device); level d's nodes
        go to draft slots past the committed pairs in node order; the leaves are not fed."""
        settings = root.settings
        topo = settings.topology
        t = topo.tensors(self.device)
        base = self.engine.length
        tokens, offered, qs, feats = [upload([root.token], self.device)], [], [], f_root
        for d in range(topo.depth):
            level = topo.level(d)
            if d:
                parent_f = feats.index_select(0, t.parent[level.start : level.stop] - topo.level(d - 1).start)
                feats = self._draft(
                    parent_f[None],
                    torch.cat(tokens)[level.start :],
                    start=base + level.start - 1,
                    offsets=torch.full((1, len(level)), d - 1, device=self.device),
                    tree_mask=t.mask[level.start : level.stop, 1 : level.stop],
                )[0]
            q = self._q(feats, settings)
            u = uniforms(settings.rng, len(level) * topo.k, self.device).view(len(level), topo.k)
            kids, drawn = settings.rule.children(q, topo.k, u)
            tokens.append(kids.flatten())
            offered.append(drawn.flatten())
            qs.append(q)
        ids = torch.cat(tokens)
        q = torch.cat(qs) if qs else torch.zeros(0, device=self.device)
        flags = torch.cat([torch.ones(1, dtype=torch.bool, device=self.device), *offered])
        q_token = q_of_tokens(topo, ids, q) if qs else torch.ones(1, device=self.device)
        return DraftTree(topo, ids, q_token, q, flags)

    def _expand(self, root: Root, f_root: torch.Tensor) -> Candidates:
        """EAGLE-2's expansion with fixed shapes: the root's top-K children, then per level the K most confident
        of the last level's candidates drafted (one forward, each seeing its drafted ancestors) and expanded
        into their top-K. Level d's K drafted nodes take draft slots [(d - 1) K, d K) past the committed pairs."""
        shape, settings = self.dynamic, root.settings
        K, device, base = shape.topk, self.device, self.engine.length
        top = torch.topk(self._q(f_root, settings), K, dim=-1)
        c = Candidates([], [], [], [])
        c.add(upload([root.token], device), torch.full((1,), -1, device=device), 0, torch.zeros(1, device=device))
        c.add(top.indices[0], torch.zeros(K, dtype=torch.long, device=device), 1, top.values[0].log())
        frontier = torch.arange(1, K + 1, device=device)  # candidate ids of the nodes to draft next
        parent_f = f_root.expand(K, -1)
        seen = torch.zeros(K, 0, dtype=torch.bool, device=device)  # [K, drafted slots]: each one's ancestors
        eye = torch.eye(K, dtype=torch.bool, device=device)
        tokens, logc = torch.cat(c.tokens), torch.cat(c.logc)
        for d in range(1, shape.depth):
            feats = self._draft(
                parent_f[None],
                tokens[frontier],
                start=base + (d - 1) * K,
                offsets=torch.full((1, K), d - 1, device=device),
                tree_mask=torch.cat([seen, eye], 1),
            )[0]
            top = torch.topk(self._q(feats, settings), K, dim=-1)  # [K, K]
            first = tokens.shape[0]
            new_logc = (logc[frontier][:, None] + top.values.log()).flatten()
            c.add(top.indices.flatten(), frontier.repeat_interleave(K), d + 1, new_logc)
            tokens, logc = torch.cat(c.tokens), torch.cat(c.logc)
            best = torch.topk(new_logc, K).indices  # [K] among the level's K^2
            frontier, owner = first + best, best // K  # each new frontier node's parent's row in ``feats``
            parent_f = feats.index_select(0, owner)
            seen = torch.cat([seen.index_select(0, owner), eye.index_select(0, owner)], 1)
        return c

    def _dynamic(self, root: Root, f_root: torch.Tensor, start: int) -> DraftTree:
        """Expand on the device, read the candidates once, graft the copied chain, keep the best n
        (``best_size``) and hand the kept subtree to the device."""
        tokens, parents, depth, logc = self._expand(root, f_root).read()
        copied = self._graft(parents, tokens, depth, logc)
        ranked = sorted(range(1, len(tokens)), key=lambda n: (-logc[n], depth[n], n))
        cost = (self.forwards - start) * self.forward_cost  # D: this step's draft forwards, in target forwards
        n = best_size([math.exp(logc[i]) for i in ranked], cost, self.curve, self.dynamic.max_nodes)
        self.sizes.append(n + 1)
        tree, index = self._subtree(ranked[:n], parents, tokens, depth, logc, copied)
        self.copied = {index[v] for v in copied if v in index}
        return tree

    def _graft(self, parents, tokens, depth, logc) -> set[int]:
        """The context's copied chain (``graft_chain``) with ``ChainRate``'s confidences; returns the nodes it
        appended."""
        self.chain = self.context.continuation(self.dynamic.lookup) if self.dynamic.lookup else []
        return set(graft_chain(self.chain, self.rate.confidence(len(self.chain)), parents, tokens, depth, logc))

    def _subtree(self, kept: list[int], parents, tokens, depth, logc, copied) -> tuple[DraftTree, dict[int, int]]:
        """The kept nodes (and, defensively, their ancestors) as a tree in BFS order on the device, and each
        kept node's index in it. q of a node's token is c(node) / c(parent); a copied node's is 1 (its copy is
        a deterministic draft)."""
        keep = {0}
        for n in kept:
            while n not in keep:
                keep.add(n)
                n = parents[n]
        order = sorted(keep, key=lambda n: (depth[n], n))
        index = {n: i for i, n in enumerate(order)}
        topo = TreeTopology.from_parents([-1] + [index[parents[n]] for n in order[1:]])
        q_token = [1.0] + [1.0 if n in copied else math.exp(logc[n] - logc[parents[n]]) for n in order[1:]]
        ids = upload([tokens[n] for n in order], self.device)
        return DraftTree(topo, ids, upload(q_token, self.device, torch.float32)), index

    def labels(self, tree: DraftTree, seen) -> list[str]:
        """``lookup`` for accepted tokens only the copied chain proposed, ``draft`` for the head's (and the
        copied ones are counted)."""
        self.copied_accepted += sum(n in self.copied for n in seen.nodes[1:])
        return ["lookup" if n in self.copied else "draft" for n in seen.nodes[1:]] + [seen.final_kind]

    def summary(self, output: list[int]) -> dict:
        out = super().summary(output)
        if self.sizes:
            out["mean_tree_nodes"] = sum(self.sizes) / len(self.sizes)
        if self.dynamic and self.dynamic.lookup:
            out["copied_tokens_accepted"] = self.copied_accepted
            out["copied_chain_rate"] = [round(h / t, 3) for h, t in zip(self.rate.hits, self.rate.tries, strict=True)]
        return out


def forward_cost(model: LoadedModel, head: FeatureHead, vocab_rows: int) -> float:
    """One draft forward's cost in target forwards of one token: the weights it reads (the head's layers and
    fuse, and the projection onto ``vocab_rows`` tokens) over the target's (every weight). A step is
    memory-bound, so bytes read set its cost (docs/methods.md, "EAGLE": against the measured figure)."""
    target = sum(p.numel() for p in model.model.parameters())
    own = sum(v.numel() for v in head.trained_state().values()) + vocab_rows * model.config.hidden_size
    return own / target


def make_feature_drafter(
    model: LoadedModel, engine: Engine, max_len: int, dynamic: DynamicTree | None = None
) -> FeatureDrafter:
    require(type(engine), "supports_trees", "The EAGLE draft")
    head, _ = shared_feature_head(model)
    return FeatureDrafter(model, head, max_len, dynamic)


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
    verifier = rule("greedy" if gen.sampling.greedy else "match")
    rec = Recorder(name, model, prompt, prompt_ids, gen, options={"rule": verifier.name, **vars(shape)})
    yield rec.started()
    max_len = len(prompt_ids) + gen.max_new_tokens + max_nodes + 1
    engine = make_engine(model, batch=1, max_len=max_len)
    source = make_feature_drafter(model, engine, max_len, shape)
    rng = make_generator(gen.sampling.seed, model.device)
    yield from speculate(rec, engine, source, DraftSettings(None, verifier, gen.sampling, rng))


assert MAX_DYNAMIC_NODES <= MAX_TREE_NODES
