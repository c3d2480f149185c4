"""A preallocated KV cache indexed by slot.

Layout: ``k[l]`` and ``v[l]`` are ``[B, H_kv, S_max, D]``. A token's keys and values
live in the slot it was written to; ``length`` slots are committed. Rollback moves
``length`` back; tree verification writes candidates past ``length`` and then
``keep`` compacts the accepted path into the next slots. ``valid[b, s]`` is False for
left-padding slots, so rows of different prompt lengths share one batch.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        n_layers: int,
        batch: int,
        n_kv_heads: int,
        head_dim: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        shape = (n_layers, batch, n_kv_heads, max_len, head_dim)
        self.full = (  # the allocation; k, v and valid are views of its first rows after ``narrow_rows``
            torch.zeros(shape, device=device, dtype=dtype),
            torch.zeros(shape, device=device, dtype=dtype),
            torch.ones(batch, max_len, dtype=torch.bool, device=device),
        )
        self.max_len = max_len
        self.reset()

    def reset(self) -> None:
        """Empty, every row and slot valid (a cache reused by another run)."""
        self.k, self.v, self.valid = self.full
        self.valid.fill_(True)
        self.length = 0
        self.padded = False  # any slot invalid (left padding) -> masks must be built

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` ([B, H_kv, T, D]) at slots [start, start+T); return the keys/values of slots [0, start+T)."""
        end = start + k.shape[2]
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def rollback(self, length: int) -> None:
        """Forget every slot from ``length`` on (a rejected draft, a flushed speculation)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"Cannot roll back to {length}: only {self.length} slots are committed.")
        self.length = length

    def keep(self, slots: torch.Tensor | list[int]) -> None:
        """Commit the written slots ``slots`` (ascending, all >= length) as the next ``len(slots)`` slots.

        Used after a tree forward: the accepted path's K/V are moved to
        [length, length+len(slots)); every other candidate is dropped.
        """
        slots = torch.as_tensor(slots, dtype=torch.long, device=self.k.device)
        n = int(slots.numel())
        if n:
            dest = slice(self.length, self.length + n)
            self.k[:, :, :, dest] = self.k.index_select(3, slots)
            self.v[:, :, :, dest] = self.v.index_select(3, slots)
            self.valid[:, dest] = self.valid.index_select(1, slots)
        self.length += n

    def select_rows(self, rows: list[int]) -> None:
        """Keep only batch rows ``rows`` (in that order): finished rows leave a batched decode."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.k.device)
        self.k = self.k.index_select(1, index)
        self.v = self.v.index_select(1, index)
        self.valid = self.valid.index_select(0, index)

    def narrow_rows(self, index: torch.Tensor) -> None:
        """``select_rows`` in place: the kept rows (index [n], on the cache's device) move to the front of the
        allocation and k, v and valid become views of its first n rows, so their addresses stay put."""
        n = index.shape[0]
        self.k[:, :n] = self.k.index_select(1, index)
        self.v[:, :n] = self.v.index_select(1, index)
        self.valid[:n] = self.valid.index_select(0, index)
        self.k, self.v, self.valid = self.k[:, :n], self.v[:, :n], self.valid[:n]


class AutogradKVCache(KVCache):
    """The cache of an engine that trains a draft layer: each write builds new key/value tensors (the
    committed prefix and the new slots) instead of copying into the preallocated ones, so autograd can run
    back through several forwards over one cache (a copy in place would change a tensor an earlier
    forward saved for its backward)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * self.k.shape[0]

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        old = self.written[layer]
        if old is not None and old[0].shape[2] < start:
            raise ValueError(f"Slots up to {start} must be written before slot {start}.")
        keys = k if old is None else torch.cat([old[0][:, :, :start], k], dim=2)
        values = v if old is None else torch.cat([old[1][:, :, :start], v], dim=2)
        self.written[layer] = (keys, values)
        return keys, values
