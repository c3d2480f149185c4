"""Prompt encoding (chat template, validation), incremental detokenization and per-token text flags."""

from __future__ import annotations

import functools

import torch

from core.models import LoadedModel


class InputError(ValueError):
    """The user's input cannot be run as given; the message says why in one sentence."""


def encode_prompt(model: LoadedModel, prompt: str, max_new_tokens: int, answer_prefix: str = "") -> list[int]:
    """Token ids of ``prompt``, through the chat template for instruct models; ``answer_prefix`` starts the
    answer (the model continues it: SoT's "{index}. {point}").

    Raises InputError for an empty prompt or one that leaves no room for
    ``max_new_tokens`` in the model's context.
    """
    if not prompt or not prompt.strip():
        raise InputError("The prompt is empty: type a question or an instruction first.")
    tok = model.tokenizer
    if model.chat:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
    else:
        ids = tok(prompt)["input_ids"]
    ids = list(ids) + (tok(answer_prefix, add_special_tokens=False)["input_ids"] if answer_prefix else [])
    budget = model.context_length
    if len(ids) + max_new_tokens > budget:
        raise InputError(
            f"The prompt is {len(ids)} tokens and {max_new_tokens} new tokens are asked for, but the model's "
            f"context holds {budget}: shorten the prompt or lower max new tokens."
        )
    return ids


class IncrementalDetokenizer:
    """Text pieces for tokens as they arrive, so that concatenating them gives decode(all).

    Decoding token by token loses spaces for some tokenizers and splits multi-byte
    characters; decoding the whole sequence and emitting the new suffix does not.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def add(self, token_ids: list[int]) -> list[str]:
        pieces = []
        for tid in token_ids:
            self.ids.append(tid)
            full = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            if full.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte
                pieces.append("")
                continue
            pieces.append(full[len(self.text) :] if full.startswith(self.text) else full)
            self.text = full
        return pieces


@functools.lru_cache(maxsize=16)
def token_flags(tokenizer, stops: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token id: does its text hold one of ``stops``; is it digits only (computed once per tokenizer)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    ends = torch.tensor([any(s in t for s in stops) for t in texts])
    digits = torch.tensor([t.strip().isdigit() for t in texts])
    return ends, digits
