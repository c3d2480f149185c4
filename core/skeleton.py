"""Skeletons for Skeleton-of-Thought and Skeleton Graph Decoding (METHODS.md section 1).

A skeleton is a numbered list of short points; for SGD each line also names the earlier
points it depends on and a difficulty 1-5:
    2. Compare storage costs | depends on: 1 | difficulty: 3

``write_skeleton`` has the model write it under a format it cannot break (greedy,
constrained per field): the numbers and separators are forced, a title is free text
that ends at a newline or '|', dependencies are chosen among earlier points only, the
difficulty among 1-5, and after each line the model chooses between the next number and
the end (3 to 10 points). ``parse_skeleton`` reads any such text (the model's, or one a
user types) into points, repairing what is invalid and saying so in ``warnings``;
``skeleton_graph`` makes the networkx DAG and its waves (topological generations).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import networkx as nx
import torch

from core.engine import make_engine
from core.models import LoadedModel
from core.text import encode_prompt

MIN_POINTS, MAX_POINTS = 3, 10
MAX_TITLE_TOKENS = 10
MAX_DEPENDENCIES = 3

SKELETON_PROMPT = (
    "You're an organizer responsible for only giving the skeleton (not the full content) for answering the "
    "question. Provide the skeleton in a list of points (numbered 1., 2., 3., etc.) to answer the question. "
    "Instead of writing a full sentence, each skeleton point should be very short with only 3~5 words. "
    "Generally, the skeleton should have 3~10 points.\n\nQuestion: {question}"
)
GRAPH_RULES = (
    "\n\nAfter each point, write '| depends on:' and the numbers of the earlier points it needs, or 'none', "
    "then '| difficulty:' and a number from 1 (easy) to 5 (hard)."
)
EXPAND_PROMPT = (
    "You're responsible for continuing the writing of one and only one point in the overall answer to the "
    "following question.\n\n{question}\n\nThe skeleton of the answer is\n\n{skeleton}\n\n{parents}"
    "Continue and only continue the writing of point {index} ({title}). Write it very shortly in 1~2 "
    "sentences and do not continue with other points!"
)
PARENTS_BLOCK = "Points already written that this point builds on:\n\n{answers}\n\n"


@dataclass
class Point:
    title: str
    depends: list[int] = field(default_factory=list)  # 0-based indices of earlier points
    difficulty: int = 3


@dataclass
class Skeleton:
    points: list[Point]
    text: str
    warnings: list[str] = field(default_factory=list)

    def listing(self) -> str:
        """The numbered titles, as shown to the model in every expansion prompt."""
        return "\n".join(f"{i}. {p.title}" for i, p in enumerate(self.points, start=1))


def join_points(titles: list[str], answers: list[str]) -> str:
    """The final answer: each point's number and title, then its expansion, in skeleton order."""
    return "\n".join(f"{i}. {t}\n   {a.strip()}" for i, (t, a) in enumerate(zip(titles, answers, strict=True), 1))


LINE = re.compile(
    r"^\s*(\d+)\s*[.)]\s*(?P<title>[^|]*?)\s*"
    r"(?:\|\s*depends\s+on\s*:?\s*(?P<deps>[^|]*?)\s*)?"
    r"(?:\|\s*difficulty\s*:?\s*(?P<diff>[^|]*?)\s*)?$",
    re.IGNORECASE,
)


def parse_skeleton(text: str, graph: bool) -> Skeleton:
    """Points from a numbered list; ``graph``: also dependencies and difficulty. Every repair is a warning.

    Raises ValueError when no numbered point can be found at all."""
    warnings: list[str] = []
    rows: list[tuple[int, str, str | None, str | None]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = LINE.match(line)
        if not m:
            warnings.append(f"Ignored a line that is not a numbered point: {line.strip()[:60]!r}.")
            continue
        rows.append((int(m.group(1)), m.group("title").strip(), m.group("deps"), m.group("diff")))
    if not rows:
        raise ValueError("The skeleton has no numbered points ('1. ...' on its own line); nothing to expand.")
    if len(rows) > MAX_POINTS:
        warnings.append(f"The skeleton has {len(rows)} points; only the first {MAX_POINTS} are kept.")
        rows = rows[:MAX_POINTS]
    numbers = [r[0] for r in rows]
    if numbers != list(range(1, len(rows) + 1)):
        warnings.append(f"Points were numbered {numbers}; renumbered 1..{len(rows)} in order.")
    index_of = {}
    for i, n in enumerate(numbers):
        index_of.setdefault(n, i)
    points = []
    for i, (_, title, deps, diff) in enumerate(rows):
        if not title:
            title = f"point {i + 1}"
            warnings.append(f"Point {i + 1} has no title; called it '{title}'.")
        point = Point(title)
        if graph:
            point.depends = _dependencies(i, deps, index_of, warnings)
            point.difficulty = _difficulty(i, diff, warnings)
        points.append(point)
    return Skeleton(points, text, warnings)


def _dependencies(i: int, deps: str | None, index_of: dict[int, int], warnings: list[str]) -> list[int]:
    if deps is None:
        warnings.append(f"Point {i + 1} does not say what it depends on; taken as 'none'.")
        return []
    out = []
    for ref in re.findall(r"\d+", deps):
        j = index_of.get(int(ref))
        if j is None or j >= i:
            kind = "itself" if j == i else ("a later point" if j is not None else "a point that does not exist")
            warnings.append(f"Point {i + 1} depends on {ref}, {kind}; that dependency was dropped.")
        elif j not in out:
            out.append(j)
    if not out and deps.strip() and deps.strip().lower() != "none" and not re.search(r"\d", deps):
        warnings.append(f"Point {i + 1}'s dependencies {deps.strip()!r} are not numbers; taken as 'none'.")
    return out


def _difficulty(i: int, diff: str | None, warnings: list[str]) -> int:
    m = re.search(r"-?\d+", diff or "")
    if m is None:
        warnings.append(f"Point {i + 1} has no difficulty; taken as 3.")
        return 3
    value = int(m.group())
    if not 1 <= value <= 5:
        warnings.append(f"Point {i + 1} has difficulty {value}; clamped to 1-5.")
    return min(max(value, 1), 5)


def skeleton_graph(skeleton: Skeleton) -> nx.DiGraph:
    """The DAG: node i per point (title, difficulty), an edge j -> i when point i depends on j."""
    g = nx.DiGraph()
    for i, p in enumerate(skeleton.points):
        g.add_node(i, title=p.title, difficulty=p.difficulty)
    for i, p in enumerate(skeleton.points):
        g.add_edges_from((j, i) for j in p.depends)
    if not nx.is_directed_acyclic_graph(g):  # cannot happen with earlier-only dependencies; kept as a guard
        raise ValueError("The skeleton's dependencies form a cycle.")
    return g


def waves(g: nx.DiGraph) -> list[list[int]]:
    """Waves of ready nodes: every node whose parents are all in earlier waves."""
    return [sorted(gen) for gen in nx.topological_generations(g)]


# -- constrained writing ---------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _token_flags(tokenizer, stops: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token id: does its text hold one of ``stops``; is it digits only (computed once per tokenizer)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    ends = torch.tensor([any(s in t for s in stops) for t in texts])
    digits = torch.tensor([t.strip().isdigit() for t in texts])
    return ends, digits


class _Writer:
    """Greedy decoding with forced text, free fields and choices, on a batch-1 engine."""

    def __init__(self, model: LoadedModel, prompt_ids: list[int], budget: int) -> None:
        self.model, self.tok = model, model.tokenizer
        self.engine = make_engine(model, batch=1, max_len=len(prompt_ids) + budget)
        self.vocab = model.model.get_output_embeddings().out_features
        self.pending = list(prompt_ids)
        self.written: list[int] = []
        self.forwards = 0

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

    def free(self, stops: tuple[str, ...], max_tokens: int) -> None:
        """Greedy text until the model picks a token holding one of ``stops`` (or EOS), at least one token;
        tokens that are only digits are not allowed (a title is words; numbers belong to the format)."""
        ends, digits = (self._fit(f) for f in _token_flags(self.tok, stops))
        ends[[t for t in self.model.eos_ids if t < self.vocab]] = True
        for n in range(max_tokens):
            logits = self._next_logits().masked_fill(digits, float("-inf"))
            if n == 0:
                logits = logits.masked_fill(ends, float("-inf"))
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
        mark = (self.engine.length, len(self.written), list(self.pending), getattr(self, "last", None))
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
            self.engine.rollback(mark[0])
            self.written, self.pending, self.last = self.written[: mark[1]], mark[2], mark[3]
        return chosen


def write_skeleton(model: LoadedModel, question: str, graph: bool) -> tuple[Skeleton, int]:
    """The model's skeleton for ``question`` under the constrained format; (parsed skeleton, forwards)."""
    prompt = SKELETON_PROMPT.format(question=question) + (GRAPH_RULES if graph else "")
    budget = MAX_POINTS * (MAX_TITLE_TOKENS + 24)
    w = _Writer(model, encode_prompt(model, prompt, budget), budget)
    titles: list[str] = []
    warnings: list[str] = []
    for n in range(1, MAX_POINTS + 1):
        line_start = len(w.written)
        w.force(f"{n}." if n == 1 else f"\n{n}.")
        title_start = len(w.written)
        w.free(("\n", "|", ":") if graph else ("\n", ":"), MAX_TITLE_TOKENS)
        title = _gist(w.tok.decode(w.written[title_start:], skip_special_tokens=True))
        if title in titles:  # a small model loops; a repeated point ends the skeleton
            w.written = w.written[:line_start]
            warnings.append(
                f"The model repeated point {titles.index(title) + 1} as point {n}; the skeleton ends there."
            )
            break
        titles.append(title)
        if graph:
            _write_dependencies(w, n)
            w.force(" | difficulty:")
            w.choose([f" {d}" for d in range(1, 6)])
        if n == MAX_POINTS or (n >= MIN_POINTS and w.choose([f"\n{n + 1}", None], write=False) == 1):
            break
    skeleton = parse_skeleton(w.tok.decode(w.written, skip_special_tokens=True), graph)
    skeleton.warnings = warnings + skeleton.warnings
    return skeleton, w.forwards


def _gist(title: str) -> str:
    """The first three words of a title, letters only: what makes two points the same point."""
    return " ".join(re.sub(r"[^a-z ]", " ", title.lower()).split()[:3])


def _write_dependencies(w: _Writer, n: int) -> None:
    """' | depends on: none' or up to MAX_DEPENDENCIES earlier point numbers, each the model's choice."""
    w.force(" | depends on:")
    left = list(range(1, n))
    if not left:
        w.force(" none")
        return
    first = w.choose([" none"] + [f" {j}" for j in left])  # writes the choice
    if first == 0:
        return
    left.pop(first - 1)
    for _ in range(MAX_DEPENDENCIES - 1):
        if not left or w.choose([",", " |"], write=False) == 1:
            return
        w.force(",")
        pick = w.choose([f" {j}" for j in left])
        left.pop(pick)
