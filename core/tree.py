"""Draft-tree topology as data, compiled once.

A full tree with ``k`` children per node and ``depth`` L, nodes numbered in BFS order;
node 0 is the root (the last committed token, not yet forwarded). Compiled into the
ancestor-or-self attention mask [N, N], each node's depth (position offset), each
level's node range, and each node's parent and children. Slots in the KV cache follow
node order, so the mask columns of a level are the nodes before and in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class TreeTopology:
    k: int
    depth: int
    parent: tuple[int, ...]
    node_depth: tuple[int, ...]
    mask: torch.Tensor = field(repr=False, compare=False)  # [N, N] bool, ancestor-or-self

    @classmethod
    def full(cls, k: int, depth: int) -> TreeTopology:
        if k < 1 or depth < 0:
            raise ValueError(f"A draft tree needs k >= 1 children per node and depth >= 0, got k={k}, depth={depth}.")
        parent, node_depth, frontier = [-1], [0], [0]
        for d in range(1, depth + 1):
            nxt = []
            for node in frontier:
                for _ in range(k):
                    parent.append(node)
                    node_depth.append(d)
                    nxt.append(len(parent) - 1)
            frontier = nxt
        n = len(parent)
        mask = torch.zeros(n, n, dtype=torch.bool)
        for i in range(n):
            j = i
            while j >= 0:
                mask[i, j] = True
                j = parent[j]
        return cls(k, depth, tuple(parent), tuple(node_depth), mask)

    @property
    def size(self) -> int:
        return len(self.parent)

    def level(self, d: int) -> range:
        """Node ids at depth d (contiguous in BFS order)."""
        first = sum(self.k**i for i in range(d))
        return range(first, first + self.k**d)

    def children(self, node: int) -> range:
        """Child ids of ``node`` (empty for a leaf)."""
        d = self.node_depth[node]
        if d == self.depth:
            return range(0)
        offset = node - self.level(d).start
        start = self.level(d + 1).start + offset * self.k
        return range(start, start + self.k)

    def path(self, node: int) -> list[int]:
        """Node ids from the root to ``node``."""
        out = []
        while node >= 0:
            out.append(node)
            node = self.parent[node]
        return out[::-1]
