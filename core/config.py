"""Frozen configuration dataclasses, validated at construction.

Every user-facing parameter passes through here, so a nonsense value becomes one
clear sentence (a ``ConfigError``) at the edge instead of a traceback deep in a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A parameter a user gave is out of range; the message says which and why."""


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded; the message is one sentence for the user."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class SamplingConfig:
    """How the next token is chosen from the target distribution p.

    temperature 0 means greedy (argmax); otherwise p is softmax(logits / T),
    restricted to the top_k tokens (0 = all) and to the smallest nucleus whose mass
    reaches top_p (1.0 = all). ``seed`` feeds an explicit ``torch.Generator``.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(0.0 <= self.temperature <= 10.0, f"Temperature must be between 0 and 10, got {self.temperature}.")
        _check(
            isinstance(self.top_k, int) and self.top_k >= 0,
            f"top-k must be a whole number >= 0 (0 = off), got {self.top_k}.",
        )
        _check(0.0 < self.top_p <= 1.0, f"top-p must be in (0, 1], got {self.top_p}.")
        _check(isinstance(self.seed, int) and self.seed >= 0, f"Seed must be a whole number >= 0, got {self.seed}.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerationConfig:
    """One run: how many new tokens at most, and how each is sampled."""

    max_new_tokens: int = 64
    sampling: SamplingConfig = SamplingConfig()

    def __post_init__(self) -> None:
        _check(
            isinstance(self.max_new_tokens, int) and 1 <= self.max_new_tokens <= 4096,
            f"Max new tokens must be a whole number from 1 to 4096, got {self.max_new_tokens}.",
        )

    def to_dict(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, **self.sampling.to_dict()}


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and where: an id the registry resolves, a device and a dtype."""

    name: str = "embedded"
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        _check(
            bool(self.name and self.name.strip()),
            "Model name is empty: give 'embedded', a Hugging Face id, a folder or a .gguf file.",
        )
        _check(self.device in DEVICES, f"Device must be one of {', '.join(DEVICES)}, got {self.device!r}.")
        _check(self.dtype in DTYPES, f"Dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
