"""EAGLE-2's dynamic draft tree: its shape (``DynamicTree``: depth, top-K per level, nodes verified at most, a
copied chain) and the candidates the expansion drafts on the device (``Candidates``), read once per step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.engine.sync import host

MAX_DYNAMIC_NODES = 64  # verified per step at most (v(n) is measured up to 64)
MAX_CHAIN = 16  # tokens of a copied chain at most


@dataclass(frozen=True)
class DynamicTree:
    """EAGLE-2 tree shape: ``depth`` levels, ``topk`` nodes expanded per level into ``topk`` children each, at
    most ``max_nodes`` verified (root included), ``lookup`` tokens of a copied chain grafted (0: none). The
    defaults and what they measured: docs/methods.md, "EAGLE"."""

    depth: int = 2
    topk: int = 4
    max_nodes: int = 48
    lookup: int = 8

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

    @property
    def candidates(self) -> int:
        """Nodes the expansion drafts, root included: 1 + K + (depth - 1) K^2 (a fixed shape)."""
        return 1 + self.topk + (self.depth - 1) * self.topk**2


@dataclass
class Candidates:
    """The dynamic tree's drafted nodes on the device, in drafting order (node 0 the root): token, parent,
    depth and log confidence log c(u) = sum of log q along the path, each [C]."""

    tokens: list[torch.Tensor]
    parents: list[torch.Tensor]
    depths: list[torch.Tensor]
    logc: list[torch.Tensor]

    def add(self, tokens, parents, depth: int, logc) -> None:
        self.tokens.append(tokens)
        self.parents.append(parents)
        self.depths.append(torch.full_like(tokens, depth))
        self.logc.append(logc)

    def read(self) -> tuple[list[int], list[int], list[int], list[float]]:
        """The one read before verification: every candidate's token, parent, depth and log confidence."""
        parts = [torch.cat(x).double() for x in (self.tokens, self.parents, self.depths, self.logc)]
        flat = host(torch.cat(parts))
        n = len(flat) // 4
        ints = [int(x) for x in flat[: 3 * n]]
        return ints[:n], ints[n : 2 * n], ints[2 * n :], flat[3 * n :]


