"""The feature-level draft head (EAGLE): one decoder layer over the target's own features.

At position i the target's last hidden state f_i (before its final norm) predicted x_{i+1}. The
head reads f_i fused with the embedding of the token that was then chosen,
    g_i = W_fc [f_i ; E x_{i+1}] + b,
runs one decoder layer of the target's shape over g_0..g_i (its own KV cache, RoPE position i),
and predicts the next feature f^_{i+1}; the target's frozen final norm and the reduced LM head
(``core.heads.vocab``) turn it into q over x_{i+2}. Drafting deeper feeds f^ back in place of f.

The layer is a transformers decoder of the target's own class with one layer (``--layers`` more) and no vocabulary
(a 1-row embedding and LM head it never uses), so the compact llama engine runs it: KV cache,
tree masks and ``keep`` come for free. Saved with the settings and figures that produced it.
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from core.heads.modules import HEADS, HeadInfo

if TYPE_CHECKING:
    from core.models import LoadedModel


def feature_head_path(model_key: str) -> Path:
    return HEADS / f"{model_key}-eagle.pt"


def _head_config(config, layers: int):
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = layers
    cfg.vocab_size = 1
    cfg.pad_token_id = None
    cfg.tie_word_embeddings = False
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types[-layers:])
    return cfg


class FeatureHead(nn.Module):
    """fc over [f ; E x] (2H -> H) and a decoder ``net`` of the target's class with ``layers`` layers (1:
    EAGLE's)."""

    def __init__(self, target: nn.Module, layers: int = 1) -> None:
        super().__init__()
        if not 1 <= layers <= target.config.num_hidden_layers:
            raise ValueError(f"A feature head has 1 to {target.config.num_hidden_layers} decoder layers, got {layers}.")
        hidden = target.config.hidden_size
        self.layers = range(layers)
        self.fc = nn.Linear(2 * hidden, hidden, bias=True)
        self.net = type(target)(_head_config(target.config, layers))

    def fuse(self, features: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """g = W_fc [f ; E x] + b for features f [..., H] and token embeddings E x [..., H]."""
        return self.fc(torch.cat([features, embeds], dim=-1))

    def trained_state(self) -> dict[str, torch.Tensor]:
        """fc and the decoder layer (the unused 1-row embedding and LM head are left out)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("net.model.embed", "net.lm_head"))}


def save_feature_head(head: FeatureHead, info: HeadInfo, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.bfloat16) for k, v in head.trained_state().items()}
    torch.save({"info": asdict(info), "state": state}, path)
    return path


def load_feature_head(model: LoadedModel, path: Path | None = None) -> tuple[FeatureHead, HeadInfo]:
    """The shipped (or given) feature head of ``model``, on its device and dtype, frozen."""
    path = path or feature_head_path(model.key)
    if not path.is_file():
        raise ValueError(
            f"{model.display_name} has no trained EAGLE head ({path.name}): choose another method, or train one "
            "with `python -m core.train eagle`."
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    info = HeadInfo(**blob["info"])
    if info.hidden != model.config.hidden_size or info.model != model.key:
        raise ValueError(f"{path.name} was trained for {info.model}, not {model.key}.")
    head = FeatureHead(model.model, info.layer)
    missing = head.load_state_dict({k: v.float() for k, v in blob["state"].items()}, strict=False)
    if missing.unexpected_keys or any(
        not k.startswith(("net.model.embed", "net.lm_head")) for k in missing.missing_keys
    ):
        raise ValueError(f"{path.name} does not hold a feature head of this model's shape.")
    head.to(device=model.device, dtype=model.dtype).eval().requires_grad_(False)
    return head, info


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_feature_head(model: LoadedModel) -> tuple[FeatureHead, HeadInfo]:
    """The shipped feature head of ``model``, loaded once per model and file version and shared read-only by
    every run (building the module, reading the file and packing its weights cost about 75 ms, a few percent
    of a short run)."""
    path = feature_head_path(model.key)
    key = (path, path.stat().st_mtime_ns if path.is_file() else None)
    cached = _SHARED.setdefault(model.model, {})
    if key not in cached:
        cached.clear()
        cached[key] = load_feature_head(model, path)
    return cached[key]
