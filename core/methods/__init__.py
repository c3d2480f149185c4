"""Decoding methods, one module each. Every method is a generator
``run(model, prompt, gen, **options) -> Iterator[trace event]``; ``METHODS`` names them
for the benchmark and the app, so a new method appears everywhere once listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.methods.ar import run_ar
from core.methods.hf import run_hf


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    run: Callable
    description: str


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo("ar", "Autoregressive", run_ar, "One forward per token on the project's engine (KV cache)."),
        MethodInfo("hf", "transformers generate", run_hf, "transformers' own generate(), the reference baseline."),
    ]
}


def get_method(name: str) -> MethodInfo:
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHODS[name]
