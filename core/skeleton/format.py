"""The skeleton format of Skeleton-of-Thought and Skeleton Graph Decoding (docs/methods.md, "Skeletons").

A skeleton is a numbered list of short points; for SGD each line also names the earlier
points it depends on and a difficulty 1-5:
    2. Compare storage costs | depends on: 1 | difficulty: 3

``parse_skeleton`` reads such text (the model's, written under constraints by
``core.skeleton.writer``, or one a user types) into points, repairing what is invalid and
saying so in ``warnings``; ``skeleton_graph`` makes the networkx DAG and ``waves`` its
topological generations. The prompts of both phases live here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

MIN_POINTS, MAX_POINTS = 3, 10

SKELETON_PROMPT = (
    "You're an organizer responsible for only giving the skeleton (not the full content) for answering the "
    "question. Provide the skeleton in a list of points (numbered 1., 2., 3., etc.) to answer the question. "
    "Instead of writing a full sentence, each skeleton point should be very short with only 3~5 words. "
    "Generally, the skeleton should have 3~10 points.{rules}\n\nQuestion: {question}"
)
GRAPH_RULES = (
    "\n\nAfter each point, write '| depends on:' and the numbers of the earlier points it needs, or 'none', "
    "then '| difficulty:' and a number from 1 (easy) to 5 (hard)."
)
# Worked examples for the SGD skeleton (the SGD paper prompts with examples of the summary, dependency list and
# difficulty): one chain, one list of independent points, one mix. Their topics are none of the labelled prompts'
# (assets/prompts/graph.jsonl), so the calibration's test split measures the examples, not a copy of them.
GRAPH_EXAMPLES = (
    "\n\nExample. Question: Help me learn to cook: pick a simple dish, then buy what the dish needs, then cook it."
    "\n1. Pick a simple dish | depends on: none | difficulty: 1"
    "\n2. Buy what the dish needs | depends on: 1 | difficulty: 2"
    "\n3. Cook the dish | depends on: 2 | difficulty: 3"
    "\n\nExample. Question: What are the benefits of tea, coffee and water?"
    "\n1. Benefits of tea | depends on: none | difficulty: 1"
    "\n2. Benefits of coffee | depends on: none | difficulty: 1"
    "\n3. Benefits of water | depends on: none | difficulty: 1"
    "\n\nExample. Question: How do I start a podcast?"
    "\n1. Choose a topic | depends on: none | difficulty: 2"
    "\n2. Buy a microphone | depends on: none | difficulty: 1"
    "\n3. Record episodes on the topic | depends on: 1, 2 | difficulty: 4"
    "\n4. Publish the episodes | depends on: 3 | difficulty: 2"
)


def skeleton_prompt(question: str, graph: bool, examples: bool = True) -> str:
    """The skeleton prompt of SoT, or of SGD (``graph``): the rules for dependencies and difficulty, and with
    ``examples`` the worked examples (the local writer and the served path both use it)."""
    rules = (GRAPH_RULES + (GRAPH_EXAMPLES if examples else "")) if graph else ""
    return SKELETON_PROMPT.format(question=question, rules=rules)


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
    warnings: list[str] = field(default_factory=list)  # repairs the reader should know of
    notes: list[str] = field(default_factory=list)  # how the skeleton was written, nothing repaired

    def listing(self) -> str:
        """The numbered titles, as shown to the model in every expansion prompt."""
        return "\n".join(f"{i}. {p.title}" for i, p in enumerate(self.points, start=1))


def point_opening(index: int, title: str) -> str:
    """How the answer to point ``index`` (1-based) begins: the SoT paper prefills each point-expanding answer
    with "{index}. {point}" so the model continues that point instead of restarting the answer. The colon
    is ours: after "2. Practice" the 135M model tends to list the next points, after "2. Practice:" it writes
    about the point (docs/methods.md, "Skeletons")."""
    return f"{index}. {title}:"


def written_points(skeleton: Skeleton, indices: list[int], answers: dict[int, str]) -> list[str]:
    """Finished points as the answer shows them: "{index}. {title}:" and the point's text."""
    return [(point_opening(j + 1, skeleton.points[j].title) + answers[j]).strip() for j in indices]


def join_points(titles: list[str], answers: list[str]) -> str:
    """The final answer in skeleton order: each point's opening and the model's continuation of it."""
    return "\n".join(
        (point_opening(i, t) + a).rstrip() for i, (t, a) in enumerate(zip(titles, answers, strict=True), 1)
    )


def gist(title: str) -> str:
    """The first three words of a title, letters only: what makes two points the same point."""
    return " ".join(re.sub(r"[^a-z ]", " ", title.lower()).split()[:3])


def complete_points(text: str) -> tuple[list[str], bool]:
    """The numbered lines of a skeleton being written, up to the first that repeats an earlier point (by
    ``gist``) or past MAX_POINTS; (the lines kept, whether the list is over)."""
    lines, seen = [], []
    for line in text.split("\n")[:-1]:  # the last line may still be growing
        m = LINE.match(line)
        if not m:
            continue
        key = gist(plain_title(m.group("title")))
        if key in seen or len(lines) == MAX_POINTS:
            return lines, True
        seen.append(key)
        lines.append(line)
    return lines, False


MARKUP = re.compile(r"[*_#`]+")


def plain_title(title: str) -> str:
    """A title as plain words: markdown emphasis, heading and code markers removed ("**Renting**" -> "Renting"),
    and a description after a colon dropped ("Research: understand the company" -> "Research")."""
    words = " ".join(MARKUP.sub("", title).split()).strip(" -:|")
    return words.split(": ", 1)[0].strip() or words


MAX_TITLE_CHARS = 200  # a typed title beyond this is cut (the writer stops titles at 10 tokens)

LINE = re.compile(
    r"^\s*(?P<mark>[|>*-]+\s*)?(\d+)\s*[.)]\s*(?P<title>.*?)\s*"
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
        if m.group("mark"):
            warnings.append(
                f"Point {m.group(2)} began with {m.group('mark').strip()!r} (a table or list marker); removed."
            )
        rows.append((int(m.group(2)), plain_title(m.group("title")), m.group("deps"), m.group("diff")))
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
        if len(title) > MAX_TITLE_CHARS:
            warnings.append(f"Point {i + 1}'s title has {len(title):,} characters; cut to {MAX_TITLE_CHARS}.")
            title = title[:MAX_TITLE_CHARS].rstrip() + "…"
        point = Point(title)
        if graph:
            point.depends = _dependencies(i, deps, index_of, warnings)
            point.difficulty = _difficulty(i, diff, warnings)
        points.append(point)
    return Skeleton(points, text, warnings)


def parse_or_fallback(text: str, graph: bool) -> Skeleton:
    """``parse_skeleton``, or when no numbered point can be read, one wave: each non-empty line a point (at most
    MAX_POINTS, no dependencies), or one point answering the question when there is no line; a note says so."""
    try:
        return parse_skeleton(text, graph)
    except ValueError:
        lines = [plain_title(line)[:MAX_TITLE_CHARS] for line in text.splitlines() if plain_title(line)]
        points = [Point(t) for t in lines[:MAX_POINTS]] or [Point("Answer")]
        how = f"its {len(points)} lines were decoded as points" if lines else "the question was answered as one point"
        note = f"The skeleton has no numbered points ('1. ...' on its own line), so {how}, in one wave."
        return Skeleton(points, text, [note])


def _dependencies(i: int, deps: str | None, index_of: dict[int, int], warnings: list[str]) -> list[int]:
    if deps is None:
        warnings.append(f"Point {i + 1} does not say what it depends on; taken as 'none'.")
        return []
    out = []
    for ref in re.findall(r"\d+", deps):
        j = index_of.get(int(ref))
        if j is None or j >= i:
            later = "a later point, which could close a cycle"
            kind = "itself" if j == i else (later if j is not None else "a point that does not exist")
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

