"""AR, SoT and SGD through an OpenAI-compatible server (``core.served.client``), yielding the same trace
events as the local methods, so the same pages, race, proxies and bench read them.

``served_ar``: one streaming request. ``served_sot`` / ``served_sgd``: the skeleton in one request (a
JSON-schema answer where the server offers structured output, else free text), read by the same repairing
parser as a local skeleton; then each wave's points as concurrent streaming requests, one thread each,
with the parents' answers in a dependent point's prompt; difficulty picks among the served model names
(cheapest first). A point whose request fails is reported by a notice naming the point and the reason;
the other points' answers are kept.

What the client sees: every time is client-side (request sent to chunk received); token ids are unknown
(each streamed chunk counts as one token, id -1); the server's own batching and speculative decoding are
opaque to it. The trace records the endpoint and model names, never the API key.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from core.config import GenerationConfig
from core.served.client import Chunk, Served, ServedError, check_models, stream_chat
from core.skeleton.decode import ITEM_NUMBER, point_budget
from core.skeleton.format import (
    EXPAND_PROMPT,
    MAX_POINTS,
    MIN_POINTS,
    PARENTS_BLOCK,
    Skeleton,
    complete_points,
    join_points,
    parse_or_fallback,
    point_opening,
    skeleton_graph,
    skeleton_prompt,
    waves,
    written_points,
)
from core.skeleton.pool import member_index
from core.trace import Clock, Forwarded, NodeStep, Notice, RunFinished, RunStarted, SkeletonReady, StepCommitted

UNKNOWN_ID = -1  # a served run does not see token ids
# A chat API cannot prefill the answer as a local run does ("{index}. {point}:"), so the prompt asks for it.
OPENING = ' Begin your answer with "{opening}" and write one or two sentences.'
SKELETON_TOKENS = 80  # 10 short points; the list ends at a blank line after it or a repeated point


class _Run:
    """The events of one served run on one clock: started, a step per chunk, finished."""

    def __init__(self, name: str, served: Served, prompt: str, gen: GenerationConfig, options: dict) -> None:
        self.name, self.served, self.prompt, self.gen = name, served, prompt, gen
        self.options, self.clock, self.steps, self.tokens, self.text = options, Clock(), 0, 0, ""

    def started(self) -> RunStarted:
        config = {**self.gen.to_dict(), **self.served.describe(), **self.options}
        return RunStarted(
            self.name, f"{self.served.model} (served)", "served", "server's", self.prompt, [], config, 0.0
        )

    def commit(self, chunk: Chunk, source: str = "target") -> StepCommitted:
        self.steps += 1
        self.tokens += chunk.tokens
        self.text += chunk.text
        t = chunk.t - self.clock.origin
        return StepCommitted(self.steps, [UNKNOWN_ID] * chunk.tokens, [chunk.text], t, 0.0, sources=[source])

    def finished(self, reason: str, extras: dict | None = None) -> RunFinished:
        now = self.clock.now()
        return RunFinished([UNKNOWN_ID] * self.tokens, self.text, now, reason, now, {"served": True, **(extras or {})})


def served_ar(served: Served, prompt: str, gen: GenerationConfig) -> Iterator:
    """AR through the server: one streamed completion of ``prompt``."""
    run = _Run("ar", served, prompt, gen, {})
    yield run.started()
    reason = "max_new_tokens"
    check_models(served)
    for chunk in stream_chat(served, prompt, max_tokens=gen.max_new_tokens, temperature=gen.sampling.temperature):
        reason = {"stop": "eos", "length": "max_new_tokens"}.get(chunk.finish or "", reason)
        if chunk.tokens:
            yield run.commit(chunk)
    yield run.finished(reason)


def served_sot(served: Served, prompt: str, gen: GenerationConfig) -> Iterator:
    return _served_skeleton("sot", served, prompt, gen, graph=False)


def served_sgd(served: Served, prompt: str, gen: GenerationConfig) -> Iterator:
    return _served_skeleton("sgd", served, prompt, gen, graph=True)


SERVED_METHODS = {"ar": served_ar, "sot": served_sot, "sgd": served_sgd}
SERVED = "@served"  # "sgd@served": sgd through the server, in the bench and on Compare


def base_method(method: str) -> str:
    """The method a name runs ("sgd@served" runs sgd through the server)."""
    return method.removesuffix(SERVED)


def baseline(method: str) -> str:
    """The AR run a method is measured against: the local ``ar``, or ``ar@served`` for a served method."""
    return "ar" + SERVED if method.endswith(SERVED) else "ar"


def _served_skeleton(name: str, served: Served, prompt: str, gen: GenerationConfig, graph: bool) -> Iterator:
    run = _Run(name, served, prompt, gen, {"graph": graph})
    yield run.started()
    check_models(served)
    t0 = run.clock.now()
    sk, how = write_served_skeleton(served, prompt, graph, gen)
    skeleton_s = run.clock.now() - t0
    plan = waves(skeleton_graph(sk)) if graph else [list(range(len(sk.points)))]
    names = [
        served.models[member_index(p.difficulty, len(served.models))] if graph else served.model for p in sk.points
    ]
    budget, capped = point_budget(gen.max_new_tokens, len(sk.points), 0)
    for message in [*sk.warnings, capped]:
        if message:
            yield Notice("warning", message, run.clock.now())
    yield Notice("info", f"Skeleton written by the server ({how}).", run.clock.now())
    yield SkeletonReady(
        sk.text, [p.title for p in sk.points], [list(p.depends) for p in sk.points],
        [p.difficulty if graph else 0 for p in sk.points], names, plan, list(sk.warnings), 0, skeleton_s,
        run.clock.now(),
    )  # fmt: skip
    answers: dict[int, str] = {}
    failed: dict[int, str] = {}
    for w, nodes in enumerate(plan):
        ready = [n for n in nodes if not any(d in failed for d in sk.points[n].depends)]
        for n in set(nodes) - set(ready):
            failed[n] = "a point it depends on failed"
            yield Notice("warning", _failure(sk, n, failed[n]), run.clock.now())
        yield from _wave(run, sk, w, ready, names, answers, failed, budget)
    run.text = join_points([p.title for p in sk.points], [answers.get(i, "") for i in range(len(sk.points))])
    extras = {"nodes": len(sk.points), "waves": len(plan), "skeleton_s": skeleton_s, "failed_points": len(failed)}
    extras["edges"] = sum(len(p.depends) for p in sk.points)
    extras["difficulty"] = [p.difficulty for p in sk.points] if graph else []
    extras["members"] = names
    yield run.finished("answered", {**extras, "mean_nodes_per_wave": len(sk.points) / len(plan)})


def expansion_prompt(question: str, skeleton: Skeleton, node: int, answers: dict[int, str]) -> str:
    """The SoT paper's point-expanding instruction, with a dependent point's finished parents (SGD). A local
    run prefills the answer after the plain question instead (``core.skeleton.decode.answer_opening``); a
    chat API offers no prefill, so here the instruction says which point to write."""
    parents = skeleton.points[node].depends
    block = PARENTS_BLOCK.format(answers="\n".join(written_points(skeleton, parents, answers))) if parents else ""
    return EXPAND_PROMPT.format(
        question=question, skeleton=skeleton.listing(), parents=block, index=node + 1, title=skeleton.points[node].title
    )


@dataclass
class _Arrival:
    node: int
    chunk: Chunk | None = None  # a piece of text
    error: str | None = None  # the request failed
    done: bool = False  # the request ended
    cut: bool = False  # ended by the client at the next item (whose number may have been passed on)


def _wave(run: _Run, sk: Skeleton, w: int, nodes: list[int], names: list[str], answers, failed, budget) -> Iterator:
    """Send every point of the wave at once (a thread per request); yield each piece as it arrives."""
    inbox: queue.Queue[_Arrival] = queue.Queue()
    for n in nodes:
        parents = list(sk.points[n].depends)
        if parents:  # the client has no tokenizer: the forwarded text is shown, its token count is not known
            yield Forwarded(n, parents, written_points(sk, parents, answers), None, run.clock.now())
        text = expansion_prompt(run.prompt, sk, n, answers) + OPENING.format(
            opening=point_opening(n + 1, sk.points[n].title)
        )
        threading.Thread(target=_point, args=(run, names[n], text, n, budget, inbox), daemon=True).start()
    open_requests = set(nodes)
    while open_requests:
        got = inbox.get()
        if got.error is not None:
            failed[got.node] = got.error
            open_requests.discard(got.node)
            yield Notice("warning", _failure(sk, got.node, got.error), run.clock.now())
            continue
        if got.done:
            open_requests.discard(got.node)
            text = answers.get(got.node, "")
            text = ITEM_NUMBER.sub("", text) if got.cut else text
            answers[got.node] = _continuation(text, got.node + 1, sk.points[got.node].title)
            continue
        piece = got.chunk.text
        answers[got.node] = answers.get(got.node, "") + piece
        t = got.chunk.t - run.clock.origin
        yield NodeStep(w, names[got.node], [got.node], [piece], [False], t)
        yield run.commit(got.chunk, source=f"node {got.node + 1}")


def _point(run: _Run, model: str, prompt: str, node: int, budget: int, inbox: queue.Queue) -> None:
    """One point's request, in its own thread: its chunks, then done or the error, into ``inbox``. The point
    ends where the next numbered item would start (the server stops at the next point's number; the client
    also stops reading at any later item), as a local SoT row does."""
    index, text = node + 1, ""
    stop = [f"\n{index + 1}.", f" {index + 1}. "]
    try:
        chunks = stream_chat(
            run.served, prompt, model=model, max_tokens=budget, temperature=run.gen.sampling.temperature, stop=stop
        )
        for chunk in chunks:
            text += chunk.text
            if NEXT_ITEM.search(text, _opening_end(text, index)):
                inbox.put(_Arrival(node, done=True, cut=True))
                return
            if chunk.tokens:
                inbox.put(_Arrival(node, chunk))
        inbox.put(_Arrival(node, done=True))
    except ServedError as exc:
        inbox.put(_Arrival(node, error=str(exc)))


NEXT_ITEM = re.compile(r"(?:^|[\s:*(])\d{1,2}\.\s")  # another numbered item begins (" 2. ", "\n3. ")


def _opening_end(text: str, index: int) -> int:
    """Where the point's own text starts: past a restated "{index}." at its very beginning."""
    m = re.match(r"\s*\d{1,2}\s*[.)]\s*", text)  # a restated number, its own or (a small model) another
    return m.end() if m else 0


def _failure(sk: Skeleton, node: int, why: str) -> str:
    return f"Point {node + 1} ({sk.points[node].title}) failed: {why} The other points are kept."


def _continuation(text: str, index: int, title: str) -> str:
    """A served point's text as a continuation of its opening: a restated "{index}. {title}:" is removed."""
    restated = re.compile(rf"^\s*{index}\s*[.)]\s*[*_]*{re.escape(title)}[*_]*\s*:?", re.IGNORECASE)
    return " " + restated.sub("", text).strip() if text.strip() else ""


SCHEMA = {
    "type": "object",
    "properties": {
        "points": {
            "type": "array",
            "minItems": MIN_POINTS,
            "maxItems": MAX_POINTS,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 60},
                    "depends_on": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                    "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["title", "depends_on", "difficulty"],
            },
        }
    },
    "required": ["points"],
}


def write_served_skeleton(served: Served, question: str, graph: bool, gen: GenerationConfig) -> tuple[Skeleton, str]:
    """The server's skeleton and how it came: one request, with a JSON schema when ``served.structured`` (asked
    again without it if the server refuses the field); a JSON answer is turned into the numbered format, any
    other answer read as text; either way ``parse_or_fallback`` reads it with its repairs."""
    prompt = skeleton_prompt(question, graph)
    fmt = {"type": "json_schema", "json_schema": {"name": "skeleton", "schema": SCHEMA}} if served.structured else None
    ask = dict(max_tokens=SKELETON_TOKENS, temperature=gen.sampling.temperature)
    try:
        text = _read_skeleton(stream_chat(served, prompt, response_format=fmt, **ask))
    except ServedError:
        if fmt is None:
            raise
        fmt, text = None, _read_skeleton(stream_chat(served, prompt, **ask))  # the field was refused
    listing = _from_json(text, graph)
    how = "JSON schema" if listing is not None else "free text" + (", the JSON schema ignored" if fmt else "")
    return parse_or_fallback(listing or text, graph), how


def _read_skeleton(chunks: Iterator[Chunk]) -> str:
    """The streamed skeleton, read until a point repeats an earlier one (a small model's way of ending a list)
    or the list is full; a JSON answer is read whole."""
    text = ""
    for chunk in chunks:
        text += chunk.text
        if not text.lstrip().startswith("{"):
            lines, over = complete_points(text)
            if over or (lines and "\n\n" in text[text.rfind(lines[-1]) :]):  # a blank line after the list ends it
                return "\n".join(lines)
    return text


def _from_json(text: str, graph: bool) -> str | None:
    """A JSON skeleton as numbered lines ('2. Title | depends on: 1 | difficulty: 3'); None if it is not one."""
    try:
        points = json.loads(text)["points"]
        lines = []
        for i, p in enumerate(points, 1):
            line = f"{i}. {str(p['title']).strip()}"
            if graph:
                deps = ", ".join(str(int(d)) for d in p.get("depends_on", [])) or "none"
                line += f" | depends on: {deps} | difficulty: {int(p.get('difficulty', 3))}"
            lines.append(line)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return "\n".join(lines) or None
