"""The engine's projections, fused and (on a CPU, float32) prepacked for oneDNN.

Per layer, q/k/v are one matmul and gate/up another. On a CPU, MKL's GEMM repacks
the weight on every call with more than one row, so a 2-token forward costs about
twice a 1-token one, which would eat every speculative gain. oneDNN's prepacked
layout (``torch.ops.mkldnn._reorder_linear_weight``, packed once per model) removes
that (figures: docs/methods.md, "Autoregressive"). Elsewhere
(GPU, other dtypes, a torch without the op) the fused weights go through F.linear.
Packed weights are built once per model and shared read-only by every run.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F

PACK_HINT = 16  # oneDNN's expected row count; any hint >= 2 serves 1..64 rows well (docs/methods.md)

Linear = Callable[[torch.Tensor], torch.Tensor]


def _packable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> Linear:
    """x [..., in] -> x W^T + b, prepacked when the platform allows it."""
    weight = weight.detach().contiguous()
    bias = bias.detach().contiguous() if bias is not None else None
    if _packable(weight):
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_HINT)
            probe = torch.ones(1, weight.shape[1])
            torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
            return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        except RuntimeError:
            pass
    return lambda x: F.linear(x, weight, bias)


def _fused(*modules: torch.nn.Linear) -> Linear:
    weight = torch.cat([m.weight for m in modules])
    biases = [m.bias for m in modules]
    bias = torch.cat(biases) if all(b is not None for b in biases) else None
    return make_linear(weight, bias)


def _live(*modules: torch.nn.Module) -> Linear:
    """The modules themselves, outputs concatenated: autograd reaches their weights (training)."""
    return modules[0] if len(modules) == 1 else lambda x: torch.cat([m(x) for m in modules], dim=-1)


def _packed(*modules: torch.nn.Linear) -> Linear:
    return _fused(*modules) if len(modules) > 1 else make_linear(modules[0].weight, modules[0].bias)


class LayerProjections:
    def __init__(self, layer: torch.nn.Module, build: Callable[..., Linear] = _packed) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv = build(attn.q_proj, attn.k_proj, attn.v_proj)
        self.qkv_split = (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features)
        self.o = build(attn.o_proj)
        self.gate_up = build(mlp.gate_proj, mlp.up_proj)
        self.inner = mlp.gate_proj.out_features
        self.down = build(mlp.down_proj)


class Projections:
    def __init__(self, model: torch.nn.Module, build: Callable[..., Linear] = _packed) -> None:
        self.layers = [LayerProjections(layer, build) for layer in model.model.layers]
        self.lm_head = build(model.lm_head)


def module_projections(model: torch.nn.Module) -> Projections:
    """Unfused, unpacked: each projection is the model's own module (for training through the engine)."""
    return Projections(model, _live)


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def projections(model: torch.nn.Module) -> Projections:
    """The model's fused (and packed) projections, built on first use and kept while the model lives."""
    if model not in _CACHE:
        _CACHE[model] = Projections(model)
    return _CACHE[model]
