"""Trace events: what a decoding run did, step by step, as plain values.

Every method yields these events; the UI renders them live, metrics are computed
from them, and a trace saved as JSON replays exactly like a live run. Fields are
ints, floats, strings, bools, lists and dicts of those, nothing else. Times ``t``
are seconds since the run started (``time.perf_counter`` differences).

A new method adds its own event classes with ``@event``; nothing else changes.
"""

from __future__ import annotations

import json
import time
import types
import typing
from dataclasses import MISSING as dataclasses_missing
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

VERSION = 1
NOT_A_TRACE = "This file is not a Decoding Lab trace: "

_REGISTRY: dict[str, type] = {}


def event(cls: type) -> type:
    """Register a dataclass as a trace event under its ``kind``."""
    cls = dataclass(cls)
    _REGISTRY[cls.kind] = cls
    return cls


@event
class RunStarted:
    """A run began: method, model, device/dtype, the prompt and its token ids, the run's settings."""

    kind: ClassVar[str] = "run_started"
    method: str
    model: str
    device: str
    dtype: str
    prompt: str
    prompt_ids: list[int]
    config: dict = field(default_factory=dict)
    t: float = 0.0


@event
class StepCommitted:
    """One step committed tokens to the output.

    forwards: target-model forwards this step cost; drafted / accepted: draft tokens
    proposed and accepted (0 for AR); sources: per token, what produced it
    ("target", "draft", "head 2", "bonus", ...); forward_s: the step's compute time.
    """

    kind: ClassVar[str] = "step"
    step: int
    token_ids: list[int]
    texts: list[str]
    t: float
    forward_s: float
    forwards: int = 1
    drafted: int = 0
    accepted: int = 0
    sources: list[str] = field(default_factory=list)


@event
class Notice:
    """Something the user should see: a repaired skeleton, a fallback taken."""

    kind: ClassVar[str] = "notice"
    level: str
    message: str
    t: float = 0.0


@event
class RunFinished:
    """The run ended: all output ids, the decoded text, wall time, why it stopped, and any
    method-specific figures (e.g. SPEED's ticks and flushes) in ``extras``."""

    kind: ClassVar[str] = "run_finished"
    output_ids: list[int]
    text: str
    wall_s: float
    stop_reason: str
    t: float = 0.0
    extras: dict = field(default_factory=dict)  # method-specific figures (plain values)


def to_dict(ev) -> dict:
    return {"kind": ev.kind, **asdict(ev)}


def _conforms(value, hint) -> bool:
    """Does a JSON value have the type a field is annotated with (int, float, str, bool, None, list[...],
    dict, unions of those)? A JSON int counts as a float; a bool never counts as a number."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def from_dict(data: dict):
    """One event from its JSON object; ValueError naming the event kind and field that is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is {type(data).__name__}, not an object.")
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"Unknown trace event kind {kind!r}.")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is dataclasses_missing and f.default_factory is dataclasses_missing:
                raise ValueError(f"a '{kind}' event has no '{f.name}'.")
            continue
        if not _conforms(data[f.name], hints[f.name]):
            raise ValueError(f"the '{f.name}' of a '{kind}' event is {data[f.name]!r:.40}, not {_name(hints[f.name])}.")
        values[f.name] = data[f.name]
    return cls(**values)


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def dumps(events: list) -> str:
    """A trace as JSON text: {"version": 1, "events": [...]}."""
    return json.dumps({"version": VERSION, "events": [to_dict(e) for e in events]})


def loads(text: str | bytes) -> list:
    """Parse a JSON trace; ValueError with one sentence in the user's terms when it is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(NOT_A_TRACE + "it is not UTF-8 text (a binary file?).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(NOT_A_TRACE + f"it is not JSON ({exc.msg} at line {exc.lineno}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValueError(NOT_A_TRACE + "it has no 'events' list.")
    try:
        events = [from_dict(e) for e in data["events"]]
    except ValueError as exc:
        raise ValueError(NOT_A_TRACE + str(exc)) from None
    if data.get("version") != VERSION:
        raise ValueError(NOT_A_TRACE + f"its version is {data.get('version')!r}; this lab reads version {VERSION}.")
    if not events or not isinstance(events[0], RunStarted):
        raise ValueError(NOT_A_TRACE + "it does not start with a 'run_started' event.")
    return events


class Clock:
    """Seconds since construction; one per run so every event's ``t`` shares an origin."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` of bookkeeping that is not the method's work (e.g. exact figures) off the clock."""
        self.origin += seconds


@event
class Forwarded:
    """SGD: at the start of its wave, the text a dependent point is given from its parents: per parent (``parents``,
    0-based) its finished point as the row's prompt carries it (``texts``), and how many tokens they take together
    (None through a served model: the client has no tokenizer)."""

    kind: ClassVar[str] = "forwarded"
    node: int
    parents: list[int]
    texts: list[str]
    tokens: int | None
    t: float = 0.0


@event
class BlockStep:
    """One Blockwise Parallel Decoding step: the heads' top-k lattice and the drafts verified.

    Per head i = 1..m (rows): its top-k token ids, texts and probabilities q_i, best first.
    ``paths``: the drafts verified, each as one rank per head (paths[0] is plain BPD's
    argmax draft); ``scores``: each draft's rescored S(x) (plain BPD: sum log q_i);
    ``accepted_path``: the draft the accepted tokens follow; ``accepted``: how many;
    ``final_text``: the base head's own token that ends the step; ``refine``: "none",
    "ngram" or "neural".
    """

    kind: ClassVar[str] = "block_step"
    step: int
    refine: str
    lattice_tokens: list[list[int]]
    lattice_texts: list[list[str]]
    lattice_q: list[list[float]]
    paths: list[list[int]]
    scores: list[float]
    accepted_path: int
    accepted: int
    final_text: str
    t: float = 0.0


@event
class SkeletonReady:
    """SoT / SGD: the skeleton, as written and as parsed into a DAG.

    Per node (0-based): title, the nodes it depends on, difficulty (1-5; 0 for SoT, which
    has none), the pool member that will decode it, and its wave; ``waves`` lists the nodes
    decoded together; ``warnings``: every repair made to the skeleton; ``forwards`` and
    ``skeleton_s``: what writing it cost.
    """

    kind: ClassVar[str] = "skeleton"
    text: str
    titles: list[str]
    depends: list[list[int]]
    difficulty: list[int]
    models: list[str]
    waves: list[list[int]]
    warnings: list[str]
    forwards: int
    skeleton_s: float
    t: float = 0.0


@event
class NodeStep:
    """One batched forward of one pool member in a wave: the new text of each node in the batch."""

    kind: ClassVar[str] = "node_step"
    wave: int
    model: str
    nodes: list[int]
    texts: list[str]
    done: list[bool]
    t: float = 0.0


@event
class TreeStep:
    """One draft-tree verification step (draw it as a tree).

    Per node (BFS order, node 0 = root): token id and text, parent, depth, status
    ("root", "accepted", "rejected", "unvisited"), and p / q of the node's token under
    its parent's target / draft distribution. ``final_token`` ends the step: drawn from
    the residual ("resampled") after a rejection, or from p at a leaf ("bonus").
    """

    kind: ClassVar[str] = "tree_step"
    step: int
    rule: str
    tokens: list[int]
    texts: list[str]
    parents: list[int]
    depths: list[int]
    status: list[str]
    p_token: list[float]
    q_token: list[float]
    accepted_path: list[int]
    final_token: int
    final_text: str
    final_kind: str
    t: float = 0.0


@event
class PipelineTick:
    """One tick of the SPEED pipeline (draw it as a timeline: token x stage x time).

    Per stage s (0 = earliest layers): the token text in it ("" = idle), its slot, and
    whether it is speculative (entered on an early-exit guess not yet confirmed).
    ``hit`` / ``flushed``: the token leaving the last stage confirmed the guess behind it,
    or did not, and the work behind it was thrown away. Times are seconds since the start.
    """

    kind: ClassVar[str] = "pipeline_tick"
    tick: int
    start: float
    end: float
    stage_texts: list[str]
    stage_slots: list[int]
    stage_speculative: list[bool]
    committed_text: str
    hit: bool | None
    flushed: list[str]
    t: float = 0.0
