"""Answer quality for comparing AR, SoT and SGD answers to the same question.

Offline proxies, always computed and always called proxies:
- ``answer_loglik``: the full model's mean log-likelihood (nats per token) of the answer
  given the question (its chat prompt); higher = the model finds the answer more likely;
- ``overlap_f1``: unigram F1 between an answer and the AR answer (ROUGE-1 F);
- ``repetition``: the share of the answer's token 4-grams that already occurred earlier in it. Read it
  beside the log-likelihood: a greedy loop ("The eternal debate:" twenty times) is very likely to the
  model, so the likelihood alone ranks a loop above a varied answer.
A judge, when the user gives one, scores each answer 1-5 with the same instruction:
- a local chat model: the probability-weighted score over the digits 1-5 as its first token;
- an OpenAI-compatible endpoint (``.../v1`` or ``.../chat/completions``): the first digit 1-5 of its reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from core.engine import make_engine
from core.models import LoadedModel
from core.served.client import Served, ServedError, complete
from core.text import encode_prompt

JUDGE_PROMPT = (
    "Rate the answer to the question from 1 (useless) to 5 (excellent): is it correct, complete, clear and "
    "free of repetition?\n\nQuestion: {question}\n\nAnswer: {answer}\n\nReply with one number from 1 to 5 only."
)
SCORES = range(1, 6)


class JudgeError(ValueError):
    """The judge could not score an answer; the message says why in one sentence."""


@torch.inference_mode()
def answer_loglik(model: LoadedModel, question: str, answer: str) -> float:
    """Mean log p(answer token | question, earlier answer tokens) under ``model``, nats per token."""
    prompt = encode_prompt(model, question, 0)
    ids = model.tokenizer(answer, add_special_tokens=False)["input_ids"]
    if not ids:
        return float("-inf")
    ids = ids[: max(1, model.context_length - len(prompt))]
    engine = make_engine(model, batch=1, max_len=len(prompt) + len(ids))
    logits = engine.forward(torch.tensor([prompt + ids], device=model.device)).logits[0]
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1].float(), -1)
    return float(logp.gather(-1, torch.tensor(ids, device=logp.device)[:, None]).mean())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def overlap_f1(answer: str, reference: str) -> float:
    """Unigram F1 (ROUGE-1 F) between two texts."""
    a, b = _words(answer), _words(reference)
    if not a or not b:
        return 0.0
    common = sum(min(a.count(w), b.count(w)) for w in set(a))
    if not common:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def repetition(ids: list[int], n: int = 4) -> float:
    """The share of the n-grams of ``ids`` that occurred earlier in ``ids``: 0 for none, near 1 for a loop."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def proxy_scores(model: LoadedModel, question: str, answers: dict[str, str], reference: str = "ar") -> dict:
    """Per answer: {"loglik": mean log-likelihood, "overlap_with_ar": unigram F1 with ``answers[reference]``
    (None without a reference answer), "repetition": the share of repeated token 4-grams}."""
    ref = answers.get(reference)
    return {
        name: {
            "loglik": answer_loglik(model, question, text),
            "overlap_with_ar": overlap_f1(text, ref) if ref is not None else None,
            "repetition": repetition(model.tokenizer(text, add_special_tokens=False)["input_ids"]),
        }
        for name, text in answers.items()
    }


@torch.inference_mode()
def judge_with_model(judge: LoadedModel, question: str, answer: str) -> float:
    """Expected score sum_s s * P(s | judge prompt) over the first tokens of "1".."5", renormalised."""
    ids = encode_prompt(judge, JUDGE_PROMPT.format(question=question, answer=answer), 1)
    engine = make_engine(judge, batch=1, max_len=len(ids))
    logits = engine.forward(torch.tensor([ids], device=judge.device), last_only=True).logits[0, -1]
    firsts = [judge.tokenizer(str(s), add_special_tokens=False)["input_ids"][0] for s in SCORES]
    p = torch.softmax(logits[firsts].float(), -1)
    return float(sum(s * float(ps) for s, ps in zip(SCORES, p, strict=True)))


def judge_with_endpoint(url: str, question: str, answer: str, *, model: str = "", timeout: float = 60.0) -> float:
    """The score 1-5 an OpenAI-compatible chat endpoint gives (temperature 0), through ``core.served.client``."""
    try:
        served = Served(url, (model or "default",), timeout_s=timeout)
        reply = complete(served, JUDGE_PROMPT.format(question=question, answer=answer), max_tokens=8)
    except ServedError as exc:
        raise JudgeError(f"The judge endpoint: {exc}") from None
    m = re.search(r"[1-5]", reply or "")
    if m is None:
        raise JudgeError(f"The judge replied {reply!r}, which holds no score from 1 to 5.")
    return float(m.group())


def judge_answers(
    judge: str, question: str, answers: dict[str, str], *, endpoint_model: str, load: Callable[[str], LoadedModel]
) -> dict[str, float]:
    """Score every answer 1-5: ``judge`` is an OpenAI-compatible endpoint URL (``endpoint_model`` names the
    model there), or a chat model's id or path (``load`` loads it)."""
    judge = judge.strip()
    if judge.startswith(("http://", "https://")):
        return {
            name: judge_with_endpoint(judge, question, text, model=endpoint_model) for name, text in answers.items()
        }
    local = load(judge)
    return {name: judge_with_model(local, question, text) for name, text in answers.items()}
