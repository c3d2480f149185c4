"""Draft-tree topology as data, compiled once.

A tree is a parent list in BFS order (node 0 is the root: the last committed token,
not yet forwarded; every node's parent comes before it and depths never decrease).
Compiled into the ancestor-or-self attention mask [N, N], each node's depth (position
offset), each level's node range, and each node's children. Slots in the KV cache
follow node order, so the mask columns of a level are the nodes before and in it.

- ``full(k, L)``: k children per node, depth L (the draft trees of docs/methods.md);
- ``from_paths(paths)``: the trie of several drafted token paths (BPD draft refinement:
  the p best paths share their common prefixes, verified in one tree forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.engine.sync import upload

MAX_TREE_NODES = 512  # per step: one verify forward over N nodes with an N x N mask; k = 4, depth 8 would be 87,381


def full_tree_size(k: int, depth: int) -> int:
    """Nodes of a full tree, root included: 1 + k + ... + k^depth."""
    return sum(k**d for d in range(depth + 1))


def check_tree_size(k: int, depth: int) -> None:
    """Refuse, before anything is built, a full tree over ``MAX_TREE_NODES``."""
    n = full_tree_size(k, depth) if k >= 1 and depth >= 0 else 0
    if n > MAX_TREE_NODES:
        raise ValueError(
            f"A draft tree with k = {k} and depth {depth} has {n:,} nodes, over the limit of {MAX_TREE_NODES} "
            "verified in one forward: lower k or the depth."
        )


_FULL: dict[tuple[int, int], TreeTopology] = {}


@dataclass(frozen=True)
class TreeTensors:
    """A topology on the device, uploaded once: what the verify forward and the rules read there."""

    mask: torch.Tensor  # [N, N] bool, ancestor-or-self
    depth: torch.Tensor  # [N] long: each node's position offset
    parent: torch.Tensor  # [N] long, -1 at the root
    children: torch.Tensor  # [N, max(k, 1)] long, -1 where a node has fewer
    rank: torch.Tensor  # [N] long: each node's index among its parent's children (0 at the root)


@dataclass(frozen=True)
class TreeTopology:
    k: int  # the most children any node has
    depth: int
    parent: tuple[int, ...]
    node_depth: tuple[int, ...]
    kids: tuple[tuple[int, ...], ...] = field(repr=False, compare=False)
    mask: torch.Tensor = field(repr=False, compare=False)  # [N, N] bool, ancestor-or-self

    @classmethod
    def from_parents(cls, parent: list[int]) -> TreeTopology:
        if not parent or parent[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parent) if i):
            raise ValueError("A tree's parent list starts with the root (-1) and every parent precedes its child.")
        depth = [0] * len(parent)
        kids: list[list[int]] = [[] for _ in parent]
        for i in range(1, len(parent)):
            depth[i] = depth[parent[i]] + 1
            kids[parent[i]].append(i)
        if depth != sorted(depth):
            raise ValueError("Tree nodes must be in BFS order (depths never decrease).")
        n = len(parent)
        mask = torch.zeros(n, n, dtype=torch.bool)
        for i in range(n):
            j = i
            while j >= 0:
                mask[i, j] = True
                j = parent[j]
        k = max((len(c) for c in kids), default=0)
        return cls(k, depth[-1], tuple(parent), tuple(depth), tuple(tuple(c) for c in kids), mask)

    @classmethod
    def full(cls, k: int, depth: int) -> TreeTopology:
        """k children per node, depth levels; one shared instance per shape (its device tensors with it)."""
        if (k, depth) not in _FULL:
            _FULL[(k, depth)] = cls._full(k, depth)
        return _FULL[(k, depth)]

    @classmethod
    def _full(cls, k: int, depth: int) -> TreeTopology:
        if k < 1 or depth < 0:
            raise ValueError(f"A draft tree needs k >= 1 children per node and depth >= 0, got k={k}, depth={depth}.")
        check_tree_size(k, depth)
        parent, frontier = [-1], [0]
        for _ in range(depth):
            nxt = []
            for node in frontier:
                for _ in range(k):
                    parent.append(node)
                    nxt.append(len(parent) - 1)
            frontier = nxt
        return cls.from_parents(parent)

    @classmethod
    def from_paths(cls, root: int, paths: list[list[int]]) -> tuple[TreeTopology, list[int], list[list[int]]]:
        """The trie of token ``paths`` below ``root``: (topology, token per node, each path's node ids).

        Nodes are numbered level by level in order of first appearance, so the first path
        keeps the lowest ids at every depth."""
        index: dict[tuple[int, ...], int] = {(): 0}
        parent, tokens = [-1], [root]
        for d in range(max((len(p) for p in paths), default=0)):
            for path in paths:
                if len(path) > d and tuple(path[: d + 1]) not in index:
                    index[tuple(path[: d + 1])] = len(parent)
                    parent.append(index[tuple(path[:d])])
                    tokens.append(path[d])
        nodes = [[index[tuple(p[:i])] for i in range(len(p) + 1)] for p in paths]
        return cls.from_parents(parent), tokens, nodes

    @property
    def size(self) -> int:
        return len(self.parent)

    def tensors(self, device: torch.device) -> TreeTensors:
        """This topology's ``TreeTensors`` on ``device``, uploaded on first use (without waiting for the
        device) and kept with the topology."""
        cached = self.__dict__.setdefault("_on", {})
        if device not in cached:
            width = max(self.k, 1)
            table = [list(kids) + [-1] * (width - len(kids)) for kids in self.kids]
            rank = [0] + [self.kids[self.parent[i]].index(i) for i in range(1, self.size)]
            cached[device] = TreeTensors(
                mask=upload(self.mask, device),
                depth=upload(list(self.node_depth), device),
                parent=upload(list(self.parent), device),
                children=upload(table, device),
                rank=upload(rank, device),
            )
        return cached[device]

    def level(self, d: int) -> range:
        """Node ids at depth d (contiguous in BFS order)."""
        first = self.node_depth.index(d)
        return range(first, first + self.node_depth.count(d))

    def children(self, node: int) -> tuple[int, ...]:
        """Child ids of ``node`` (empty for a leaf)."""
        return self.kids[node]

    def path(self, node: int) -> list[int]:
        """Node ids from the root to ``node``."""
        out = []
        while node >= 0:
            out.append(node)
            node = self.parent[node]
        return out[::-1]
