"""The model writes a skeleton under a format it cannot break (greedy, constrained per field).

The numbers and separators are forced, a title is free text that ends at a newline, '|' or ':',
dependencies are chosen among earlier points only, the difficulty among 1-5, and after each line
the model chooses between the next number and the end (3 to 10 points); choices walk the options'
token trie. A repeated point ends the skeleton. The result goes through ``parse_skeleton``.
"""

from __future__ import annotations

import torch

from core.engine import engine_class, make_engine
from core.engine.rows import shared_prefix
from core.models import LoadedModel
from core.skeleton.dependencies import Decider, decider_for, sequence_logprobs
from core.skeleton.format import (
    MAX_POINTS,
    MIN_POINTS,
    Skeleton,
    gist,
    parse_skeleton,
    skeleton_prompt,
)
from core.text import InputError, encode_prompt, token_flags

MAX_TITLE_TOKENS = 10


class _Writer:
    """Greedy decoding with forced text, free fields and choices, on a batch-1 engine."""

    def __init__(self, model: LoadedModel, prompt_ids: list[int], budget: int, fixed: int = 0) -> None:
        """``fixed``: the prompt's first ids are the instructions every question shares; their K/V come from the
        model's kept prefixes (``prefill_shared(reuse=True)``) after the first run, not from a forward."""
        self.model, self.tok = model, model.tokenizer
        self.engine = make_engine(model, batch=1, max_len=len(prompt_ids) + budget)
        self.vocab = model.model.get_output_embeddings().out_features
        self.pending = list(prompt_ids)
        self.written: list[int] = []
        self.forwards = 0
        if fixed and engine_class(model).supports_rows:
            self.engine.prefill_shared(torch.tensor([prompt_ids[:fixed]], device=model.device), reuse=True)
            self.pending = self.pending[fixed:]

    def _fit(self, flags: torch.Tensor) -> torch.Tensor:
        """Tokenizer-sized flags as [V] for the LM head (which may be wider than the tokenizer)."""
        out = torch.zeros(self.vocab, dtype=torch.bool)
        n = min(self.vocab, len(flags))
        out[:n] = flags[:n]
        return out.to(self.model.device)

    def _next_logits(self) -> torch.Tensor:
        """Logits after everything written so far (one forward over the tokens not yet seen, if any)."""
        if self.pending:
            out = self.engine.forward(torch.tensor([self.pending], device=self.model.device), last_only=True)
            self.engine.commit(len(self.pending))
            self.pending = []
            self.forwards += 1
            self.last = out.logits[0, -1]
        return self.last

    def _append(self, ids: list[int]) -> None:
        self.pending += ids
        self.written += ids

    def force(self, text: str) -> None:
        self._append(self.tok(text, add_special_tokens=False)["input_ids"])

    def mark(self) -> tuple:
        """Where the writing is now, to come back to with ``restore``."""
        return self.engine.length, len(self.written), list(self.pending), getattr(self, "last", None)

    def restore(self, mark: tuple) -> None:
        self.engine.rollback(mark[0])
        self.written, self.pending, self.last = self.written[: mark[1]], list(mark[2]), mark[3]

    def free(self, stops: tuple[str, ...], max_tokens: int, ban_first: frozenset[int] = frozenset()) -> None:
        """Greedy text until the model picks a token holding one of ``stops`` (or EOS), at least one token;
        tokens that are only digits are not allowed (a title is words; numbers belong to the format), nor
        ``ban_first`` as the first token."""
        ends, digits = (self._fit(f) for f in token_flags(self.tok, stops))
        ends[[t for t in self.model.eos_ids if t < self.vocab]] = True
        for n in range(max_tokens):
            logits = self._next_logits().masked_fill(digits, float("-inf"))
            if n == 0:
                logits = logits.masked_fill(ends, float("-inf"))
                logits[list(ban_first)] = float("-inf")
            tok = int(logits.argmax())
            if bool(ends[tok]):
                return
            self._append([tok])

    def choose(self, options: list[str | None], write: bool = True) -> int:
        """The option the model prefers: greedy down the options' token trie (tokens all remaining options
        share are forced; where they differ, the model's argmax among them decides). ``None`` is EOS. With
        ``write`` the chosen option is written; without, everything is rolled back."""
        seqs = [
            self.tok(o, add_special_tokens=False)["input_ids"] if o is not None else [min(self.model.eos_ids)]
            for o in options
        ]
        mark = self.mark()
        alive, depth = list(range(len(options))), 0
        while len(alive) > 1:
            nexts = {seqs[i][depth] for i in alive if depth < len(seqs[i])}
            if not nexts:
                break
            logits = self._next_logits() if len(nexts) > 1 else None
            tok = max(nexts, key=lambda t: float(logits[t])) if logits is not None else nexts.pop()
            alive = [i for i in alive if depth < len(seqs[i]) and seqs[i][depth] == tok]
            self._append([tok])
            depth += 1
        chosen = alive[0]
        self._append(seqs[chosen][depth:])
        if not write:
            self.restore(mark)
        return chosen

    def option_logprobs(self, options: list[str]) -> list[float]:
        """log p of each option's tokens after what is written (nothing is written)."""
        self._next_logits()
        mark = self.mark()

        def logits_after(prefix: list[int]) -> torch.Tensor:
            self.restore(mark)
            self._append(prefix)
            return self._next_logits()

        seqs = [self.tok(o, add_special_tokens=False)["input_ids"] for o in options]
        out = sequence_logprobs(logits_after, seqs)
        self.restore(mark)
        return out


SKELETON_BUDGET = MAX_POINTS * (MAX_TITLE_TOKENS + 24)  # tokens the constrained skeleton may take at most
RETRIES = 6  # rewrites of a repeated point while the skeleton has fewer than MIN_POINTS


def instructions_shared(model: LoadedModel, ids: list[int], graph: bool, examples: bool = True) -> int:
    """How many first ``ids`` of a skeleton prompt are the part every question shares (the chat template's start
    and the instructions, with SGD's worked examples): their common prefix with two other questions' prompts."""
    others = [encode_prompt(model, skeleton_prompt(q, graph, examples), 0) for q in ("Why?", "How so, then?")]
    return shared_prefix([ids, *others])


def skeleton_prompt_ids(model: LoadedModel, question: str, graph: bool, examples: bool = True) -> list[int]:
    """The skeleton prompt's ids; InputError, in the user's terms, when the question leaves no room for it."""
    ids = encode_prompt(model, skeleton_prompt(question, graph, examples), 0)
    if len(ids) + SKELETON_BUDGET > model.context_length:
        raise InputError(
            f"The question is too long to write a skeleton for: with the skeleton instructions it is {len(ids)} "
            f"tokens, the skeleton may take {SKELETON_BUDGET} more, and the model's context holds "
            f"{model.context_length}. Shorten the question."
        )
    return ids


def write_skeleton(
    model: LoadedModel, question: str, graph: bool, decider: Decider | None = None, given: list[str] | None = None
) -> tuple[Skeleton, int]:
    """The model's skeleton for ``question`` under the constrained format; (parsed skeleton, forwards).
    SGD's is written in two passes: the points as SoT writes them (after SoT's short prompt, with no worked
    example whose titles or question the model could copy), then, after SGD's prompt with the worked examples
    and those points forced, each point's dependencies and difficulty (docs/methods.md, "Dependencies").
    ``decider``: how SGD's dependencies are chosen (default: the model's calibrated one,
    ``core.skeleton.dependencies``); ``given``: the points' titles are these (forced), the model writes only their
    dependencies and difficulty (the second pass, and the calibration's way to score the decision alone)."""
    decider = decider or decider_for(model.key)
    if graph and given is None:
        points, first = write_skeleton(model, question, False)
        sk, second = write_skeleton(model, question, True, decider, given=[p.title for p in points.points])
        sk.warnings, sk.notes = points.warnings + sk.warnings, points.notes + sk.notes
        return sk, first + second
    ids = skeleton_prompt_ids(model, question, graph, decider.examples)
    w = _Writer(model, ids, SKELETON_BUDGET, instructions_shared(model, ids, graph, decider.examples))
    if given is not None:
        return _write_fields(w, given, graph, decider), w.forwards
    titles: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    for n in range(1, MAX_POINTS + 1):
        title = _write_title(w, n, titles)
        if title in titles:  # a small model ends a list by repeating a point; the repeat is rolled back
            said = (
                f"The model's point {n} repeated point {titles.index(title) + 1}, so the skeleton ends at point {n - 1}"
            )
            if n <= MIN_POINTS:
                warnings.append(said + f", fewer than {MIN_POINTS} points.")
            else:
                notes.append(said + ".")
            break
        titles.append(title)
        if n == MAX_POINTS or (n >= MIN_POINTS and w.choose([f"\n{n + 1}", None], write=False) == 1):
            break
    skeleton = parse_skeleton(w.tok.decode(w.written, skip_special_tokens=True), graph)
    skeleton.warnings = warnings + skeleton.warnings
    skeleton.notes = notes
    return skeleton, w.forwards


def _write_title(w: _Writer, n: int, titles: list[str]) -> str:
    """Point n's number and title. A repeat of an earlier point is rewritten without its first token while
    the skeleton is short of MIN_POINTS (at most RETRIES times); a repeat that stays is rolled back (the caller
    ends the skeleton there). An empty title is rewritten the same way at any n, and kept as it is if RETRIES
    rewrites do not help."""
    mark, banned = w.mark(), set()
    for attempt in range(1, RETRIES + 1):
        w.force(f"{n}." if n == 1 else f"\n{n}.")
        start = len(w.written)
        w.free(("\n", ":"), MAX_TITLE_TOKENS, frozenset(banned))
        title = gist(w.tok.decode(w.written[start:], skip_special_tokens=True))
        if (title and title not in titles) or (not title and attempt == RETRIES):
            return title
        banned.add(w.written[start])
        w.restore(mark)
        if title and attempt >= (RETRIES if n <= MIN_POINTS else 1):
            return title  # a repeat
    return title


def _write_graph_fields(w: _Writer, n: int, decider: Decider) -> None:
    """' | depends on: ...' by the decider, then ' | difficulty: d', the model's choice of 1-5."""
    w.force(" | depends on:")
    decider.write(w, n)
    w.force(" | difficulty:")
    w.choose([f" {d}" for d in range(1, 6)])


def _write_fields(w: _Writer, titles: list[str], graph: bool, decider: Decider) -> Skeleton:
    """The given titles, each followed (``graph``) by the fields the model chooses."""
    for n, title in enumerate(titles[:MAX_POINTS], start=1):
        w.force(f"{n}. {title}" if n == 1 else f"\n{n}. {title}")
        if graph:
            _write_graph_fields(w, n, decider)
    return parse_skeleton(w.tok.decode(w.written, skip_special_tokens=True), graph)
