"""Small trained heads on a frozen target: exit heads (self-draft, SPEED) and BPD heads.

A head is a residual MLP block into the target's own frozen final norm and LM head:
    h' = h + W_out SiLU(W_in h),   logits = LMHead(Norm(h'))
W_out starts at zero, so an untrained head is exactly the plain predictor
``final norm + LM head`` applied to h. An exit head reads the hidden state after
layer e and predicts the model's next token; BPD head i reads the last hidden state
and predicts token t+1+i. Heads are saved with the settings that produced them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from core.models import LoadedModel

ASSETS = Path(__file__).resolve().parents[2] / "assets"
HEADS = ASSETS / "heads"
DEFAULT_EXIT_LAYER = 8  # the shipped self-draft / SPEED exit head of the embedded model (30 layers)


class ResidualHead(nn.Module):
    def __init__(self, hidden: int, inner: int | None = None) -> None:
        super().__init__()
        inner = inner or hidden
        self.w_in = nn.Linear(hidden, inner, bias=False)
        self.w_out = nn.Linear(inner, hidden, bias=False)
        nn.init.zeros_(self.w_out.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.w_out(nn.functional.silu(self.w_in(h)))


@dataclass
class HeadInfo:
    """What a head file records besides weights: what it is for and how it was made."""

    kind: str  # "exit" or "bpd"
    model: str
    layer: int  # exit: the layer e whose output it reads; bpd: the number of decoder layers
    count: int  # exit: 1; bpd: k - 1 heads
    hidden: int
    command: str = ""
    seed: int = 0
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)


_LOADED: dict[tuple, Heads] = {}


@dataclass
class Heads:
    info: HeadInfo
    heads: nn.ModuleList

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(torch.bfloat16) for k, v in self.heads.state_dict().items()}  # halves the shipped file
        torch.save({"info": asdict(self.info), "state": state}, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device, dtype: torch.dtype) -> Heads:
        """The frozen heads in ``path``, read once per file version, device and dtype and shared read-only by
        every run (reading and building them on each run's clock would slow every run)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No trained head file at '{path}'.")
        key = (str(path.resolve()), path.stat().st_mtime_ns, str(device), dtype)
        if key not in _LOADED:
            _LOADED[key] = cls._read(path, device, dtype)
        return _LOADED[key]

    @classmethod
    def _read(cls, path: Path, device: torch.device, dtype: torch.dtype) -> Heads:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        info = HeadInfo(**blob["info"])
        heads = nn.ModuleList(ResidualHead(info.hidden) for _ in range(info.count))
        heads.load_state_dict({k: v.float() for k, v in blob["state"].items()})
        heads.to(device=device, dtype=dtype).eval().requires_grad_(False)
        return cls(info, heads)

    @classmethod
    def new(cls, info: HeadInfo) -> Heads:
        return cls(info, nn.ModuleList(ResidualHead(info.hidden) for _ in range(info.count)))


def exit_head_path(model_key: str, layer: int) -> Path:
    return HEADS / f"{model_key}-exit-L{layer}.pt"


def fitted_exit_layer(n_layers: int, layer: int | None, default: int = DEFAULT_EXIT_LAYER) -> int:
    """The exit layer a run uses: the caller's, or ``default`` where the model has more layers than that,
    else a quarter of its layers (so a default never fails on a smaller model)."""
    if layer is not None:
        return layer
    return default if default < n_layers else max(1, n_layers // 4)


def check_exit_layer(n_layers: int, layer: int, name: str = "The exit layer") -> None:
    """An exit layer e reads the output of decoder layer e: 1 <= e < L (layer L is the model itself).
    ``name``: what the message calls it (a command line names its flag)."""
    if not 1 <= layer < n_layers:
        raise ValueError(f"{name} must be between 1 and {n_layers - 1} for this {n_layers}-layer model, got {layer}.")


def load_exit_head(model: LoadedModel, layer: int) -> tuple[nn.Module | None, str | None]:
    """The shipped exit head reading the output of layer e = ``layer``, or None (the plain early exit:
    final norm + LM head) and a sentence saying so."""
    check_exit_layer(model.config.num_hidden_layers, layer)
    path = exit_head_path(model.key, layer)
    if path.is_file():
        return Heads.load(path, model.device, model.dtype).heads[0], None
    return None, (
        f"No trained exit head for {model.key} at layer {layer} ({path.name}); using the plain early exit "
        f"(final norm + LM head). Train one with `python -m core.train exit-head --layer {layer}`."
    )


def bpd_heads_path(model_key: str, k: int) -> Path:
    return HEADS / f"{model_key}-bpd-k{k}.pt"


Projection = Callable[[torch.Tensor], torch.Tensor]  # hidden states [..., H] -> float32 logits [..., V]


def head_logits(project: Projection, head: nn.Module | None, h: torch.Tensor) -> torch.Tensor:
    """A head's logits: the target's frozen final norm + LM head (``project``) over head(h), or over h
    itself for the plain early exit (head None). ``project`` is ``engine.logits`` when decoding and
    ``lm_projection(model)`` (differentiable) when training."""
    return project(head(h) if head is not None else h)


def lm_projection(model: torch.nn.Module) -> Projection:
    """The target's final norm + LM head as plain modules (autograd flows through to a head)."""
    return lambda h: model.lm_head(model.model.norm(h)).float()
