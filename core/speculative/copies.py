"""Drafts copied from the context: what followed the latest earlier occurrence of the context's last
n-gram (``ContextIndex``), how often such copies are right in this run (``ChainRate``), the ``lookup``
draft source that verifies a copy as a chain (``PromptLookup``, method ``pld``), and the graft that hangs a
copy on another draft's tree (``graft_chain``, EAGLE's ``--lookup``).
"""

from __future__ import annotations

import math

import torch

from core.engine.cost import best_size
from core.engine.sync import upload
from core.speculative.drafts import DraftDefaults, DraftTree, Root
from core.speculative.tree import TreeTopology


class ContextIndex:
    """The context's n-grams (n <= ``max_ngram``), each mapped to where its latest occurrence was followed, so
    a copied continuation costs a dictionary look-up per n instead of a scan of the context."""

    def __init__(self, max_ngram: int = 3) -> None:
        if max_ngram < 1:
            raise ValueError(f"A context look-up matches n-grams of n >= 1, got {max_ngram}.")
        self.max_ngram = max_ngram
        self.tokens: list[int] = []
        self.after: list[dict[tuple[int, ...], int]] = [{} for _ in range(max_ngram)]

    def extend(self, tokens: list[int]) -> None:
        """Append tokens; each n-gram that ends just before a new token now points at it."""
        for tok in tokens:
            end = len(self.tokens)
            for n in range(1, min(self.max_ngram, end) + 1):
                self.after[n - 1][tuple(self.tokens[end - n :])] = end
            self.tokens.append(tok)

    def continuation(self, want: int) -> list[int]:
        """``want`` tokens after the latest earlier occurrence of the longest suffix n-gram that occurred before
        (n <= max_ngram), [] if none did. A copy that runs into the present keeps copying what it has just
        copied (as LZ77 does), so a loop of period P = len - start continues as a loop."""
        for n in range(min(self.max_ngram, len(self.tokens) - 1), 0, -1):
            start = self.after[n - 1].get(tuple(self.tokens[-n:]))
            if start is not None:
                period = len(self.tokens) - start
                return [self.tokens[start + i % period] for i in range(want)]
        return []


class ChainRate:
    """How often a chain copied from the context is right, learnt over the run: a_j = P(the chain's token j is
    the token the model emits | its tokens before j were), counted per chain position j with a Beta(1, 2)
    prior (a first guess of 1/3). A copied node at chain position j gets confidence c = a_0 a_1 ... a_j."""

    def __init__(self, length: int) -> None:
        self.hits, self.tries = [1.0] * length, [3.0] * length

    def confidence(self, n: int) -> list[float]:
        out, c = [], 1.0
        for hits, tries in zip(self.hits[:n], self.tries[:n], strict=True):
            c *= hits / tries
            out.append(c)
        return out

    def update(self, chain: list[int], emitted: list[int]) -> None:
        """Count the last step's chain against what the model emitted (accepted tokens, then the final one)."""
        for j, (tok, out) in enumerate(zip(chain, emitted, strict=False)):
            self.tries[j] += 1
            if tok != out:
                return
            self.hits[j] += 1


def graft_chain(chain: list[int], confidence: list[float], parents, tokens, depth, logc) -> list[int]:
    """Hang the copied chain below the root (0) of a tree given as flat per-node lists: where the tree already
    has the chain's next token under the current node, follow that node (its confidence raised to the
    chain's if higher), else append a node. Returns the appended nodes."""
    child = {(parents[n], tokens[n]): n for n in range(1, len(tokens))}
    u, added = 0, []
    for tok, c in zip(chain, confidence, strict=True):
        v = child.get((u, tok))
        if v is None:
            parents.append(u)
            tokens.append(tok)
            depth.append(depth[u] + 1)
            logc.append(math.log(c))
            v = len(tokens) - 1
            added.append(v)
        else:
            logc[v] = max(logc[v], math.log(c))
        u = v
    return added


class PromptLookup(DraftDefaults):
    """n-gram prompt lookup: copy what followed the latest earlier match of the context's last n-gram, as far
    as it pays. Chain node j has confidence c_j = a_0 ... a_j (``ChainRate``, learnt over the run), and with
    a verify-cost curve the chain is cut at the length m maximising (1 + c_0 + ... + c_{m-1}) / v(m + 1)
    (``best_size``; the look-up itself costs nothing measurable), so a step verifies the copied tokens only
    where they are expected to be worth it. Without a curve the whole chain (up to the depth) is verified. The
    copy is host work on tokens the host already has: a step reads nothing before its verification."""

    def __init__(self, vocab_size: int, device: torch.device, max_ngram: int = 3, curve: dict | None = None) -> None:
        self.vocab_size, self.device, self.max_ngram, self.curve = vocab_size, device, max_ngram, curve
        self.context = ContextIndex(max_ngram)
        self.rate: ChainRate | None = None
        self.chain: list[int] = []  # the step's whole copy, verified or not
        self.name = f"prompt lookup (n-gram <= {max_ngram})" + (", cut by v(n)" if curve else "")

    def propose(self, root: Root) -> DraftTree:
        depth = root.settings.topology.depth
        self.rate = self.rate or ChainRate(depth)
        self.rate.update(self.chain, [*root.fresh[1:], root.token])  # what the last step emitted
        self.context.extend(root.ids[len(self.context.tokens) :])
        self.chain = self.context.continuation(depth)
        keep = len(self.chain)
        if self.curve is not None:
            keep = best_size(self.rate.confidence(keep), 0.0, self.curve, keep + 1)
        return chain_tree([root.token, *self.chain[:keep]], self.vocab_size, self.device, root.settings.rule.uses_q)


def chain_tree(tokens: list[int], vocab_size: int, device: torch.device, with_q: bool) -> DraftTree:
    """A deterministic chain below ``tokens[0]`` (uploaded without waiting): q one-hot on each node's child when
    the rule reads q."""
    ids = upload(tokens, device)
    q = one_hot(ids[1:], vocab_size) if with_q else None
    return DraftTree(TreeTopology.full(1, len(tokens) - 1), ids, torch.ones(len(tokens), device=device), q)


def one_hot(tokens: torch.Tensor, size: int) -> torch.Tensor:
    """q of a deterministic draft [n, V]: all the mass of row i on tokens[i]."""
    return torch.zeros(tokens.shape[0], size, device=tokens.device).scatter_(1, tokens[:, None], 1.0)
