"""Speculative decoding with draft chains and trees (docs/methods.md, "Draft trees").

One step, in the four named calls of the Medusa step loop:
    propose  - the draft source builds a tree below the root (``DraftSource.propose(root)``), children drawn
               from q by the rule's own scheme (``core.speculative.rules``);
    verify   - one target forward over the whole tree with the tree attention mask (self-draft: layers
               [e, L) only, on the draft's hidden states);
    evaluate - the rule from the root down, on the device: at each node the rule accepts at most one child;
               the step ends with a residual draw after a rejection, or a bonus token drawn from p at a leaf
               (greedy: every node at once);
    update   - the KV cache keeps the accepted path only (``engine.keep``), and the next root carries what
               the source may read.
At temperature 0 every rule is the greedy rule, so output equals ``ar`` token for token. A step reads the
device once after evaluating (``read_step``: the path, the final token and the trace's figures in one
transfer); a source may read once more before verifying (docs/methods.md, "GPU engine").

``speculate`` is the step loop itself, shared by the draft-tree methods (``core.draft_trees``), EAGLE
(``core.eagle.drafter``) and Blockwise Parallel Decoding (``core.blockwise``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.engine import Engine, EngineOutput, prefill
from core.engine.sync import Stopwatch, host
from core.recorder import Recorder
from core.speculative.drafts import DraftSettings, DraftSource, DraftTree, Root
from core.speculative.expected import ExpectedTally
from core.speculative.rules import Walk
from core.trace import TreeStep


def verify(engine: Engine, tree: DraftTree) -> EngineOutput:
    """One target forward over every node of the tree: logits [1, N, V], last hidden states [1, N, H]."""
    t = tree.topology.tensors(engine.device)
    where = {"tree_mask": t.mask, "offsets": t.depth[None]}
    if tree.hidden is not None:
        return engine.forward(hidden_in=tree.hidden, layers=range(tree.reuse_layers, engine.n_layers), **where)
    return engine.forward(tree.tokens[None], **where)


@dataclass
class Seen:
    """A step as the host reads it once the device has decided it (``read_step``)."""

    nodes: list[int]  # the accepted path, root first
    final: int  # the token that ends the step
    final_kind: str  # "bonus" (drawn from p at a leaf) or "resampled" (after a rejection)
    examined: dict[int, int]  # path node -> how many of its children the rule looked at (for colouring)
    tokens: list[int]  # per node
    offered: list[bool]  # per node: the rule really drew it
    p_token: list[float]  # per node: p of its token under its parent's p (-1: not computed)
    q_token: list[float]  # per node: q of its token under its parent's q
    agree: bool  # the draft's top-1 at the root was the target's
    trace: list[float]  # the source's own figures (``DraftTree.trace``)


def read_step(tree: DraftTree, walk: Walk, agree: torch.Tensor) -> Seen:
    """The step's one read: the path, its length, the final token, what the rule examined, and the tree's tokens,
    flags and p / q per node, packed into one transfer."""
    topo = tree.topology
    n, d = topo.size, topo.depth + 1
    offered = tree.offered if tree.offered is not None else torch.ones(n, dtype=torch.bool, device=tree.tokens.device)
    parts = [walk.count, walk.final, walk.path, walk.examined, tree.tokens, offered, walk.p_token, tree.q_token, agree]
    if tree.trace is not None:
        parts.append(tree.trace)
    flat = host(torch.cat([x.reshape(-1).double() for x in parts]))
    count, final = int(flat[0]), int(flat[1])
    path, examined = [int(x) for x in flat[2 : 2 + d]], [int(x) for x in flat[2 + d : 2 + 2 * d]]
    rest = flat[2 + 2 * d :]
    tokens, flags = [int(x) for x in rest[:n]], [bool(x) for x in rest[n : 2 * n]]
    nodes = path[:count]
    kids = [c for c in topo.children(nodes[-1]) if flags[c]]
    seen = Seen(
        nodes=nodes,
        final=final,
        final_kind="resampled" if kids else "bonus",
        examined={node: e for node, e in zip(nodes, examined, strict=False) if e},
        tokens=tokens,
        offered=flags,
        p_token=rest[2 * n : 3 * n],
        q_token=rest[3 * n : 4 * n],
        agree=bool(rest[4 * n]),
        trace=rest[4 * n + 1 :],
    )
    return seen


def tree_event(step: int, rule_name: str, tree: DraftTree, seen: Seen, tokenizer, t: float) -> TreeStep:
    topo = tree.topology
    status = ["unvisited"] * topo.size
    status[0] = "root"
    for parent, looked in seen.examined.items():
        for c in list(topo.children(parent))[:looked]:
            status[c] = "rejected"
    for node in seen.nodes[1:]:
        status[node] = "accepted"
    return TreeStep(
        step=step,
        rule=rule_name,
        tokens=seen.tokens,
        texts=[tokenizer.decode([x]) for x in seen.tokens],
        parents=list(topo.parent),
        depths=list(topo.node_depth),
        status=status,
        p_token=seen.p_token,
        q_token=seen.q_token,
        accepted_path=list(seen.nodes),
        final_token=seen.final,
        final_text=tokenizer.decode([seen.final]),
        final_kind=seen.final_kind,
        t=t,
    )


def first_agreement(tree: DraftTree, logits: torch.Tensor) -> torch.Tensor:
    """[] whether the draft's top-1 at the root (its q's argmax, or for a deterministic draft its first child)
    is the target's, on the device."""
    if tree.q is not None and tree.q.shape[0]:
        draft = tree.q[0].argmax()
    elif tree.topology.size > 1:
        draft = tree.tokens[1]
    else:
        return torch.zeros((), dtype=torch.bool, device=logits.device)
    return draft == logits[0].argmax()


class StepCosts:
    """What a run's steps cost and how well the draft guessed: seconds drafting and verifying (device time,
    ``Stopwatch``), first-token agreement (the draft's top-1 at the root = the target's), and each rule's exact
    acceptance at every verified node when sampling (``core.speculative.expected``). The source counts its own
    draft forwards (``DraftSource.summary``)."""

    def __init__(self, settings: DraftSettings, device: torch.device) -> None:
        self.watch = Stopwatch(device)
        self.agree = self.steps = 0
        self.tally = ExpectedTally(device) if not settings.sampling.greedy and settings.rule.exact else None

    def add(self, tree: DraftTree, seen: Seen, marks: tuple) -> None:
        self.watch.add("draft", marks[0], marks[1])
        self.watch.add("verify", marks[1], marks[2])
        self.steps += 1
        self.agree += seen.agree

    def summary(self) -> dict:
        seconds = self.watch.seconds()
        out = {
            "draft_seconds": seconds.get("draft", 0.0),
            "verify_seconds": seconds.get("verify", 0.0),
            "first_token_agreement": self.agree / self.steps if self.steps else None,
        }
        if self.tally is not None:
            out["expected_acceptance"] = self.tally.summary()
        return out


def speculate(rec: Recorder, engine: Engine, source: DraftSource, settings: DraftSettings) -> Iterator:
    """The step loop every draft-and-verify method shares: prefill, then per step the four calls propose (the
    source's tree) / verify (one target forward) / evaluate (the rule, on the device) / update (keep the
    accepted path; the next root).

    Per step it yields a TreeStep, the source's own events (``describe``) and a StepCommitted whose per-token
    sources come from ``labels``; then RunFinished with the source's ``summary`` and the run's ``StepCosts``.
    """
    prompt_ids, tokenizer = rec.prompt_ids, rec.model.tokenizer
    hidden = prefill(engine, prompt_ids)
    root = Root(prompt_ids[-1], list(prompt_ids), list(prompt_ids[:-1]), hidden, [], settings)
    costs = StepCosts(settings, engine.device)
    while not rec.done:
        t0, marks = time.perf_counter(), [costs.watch.mark()]
        tree = source.propose(root)
        marks.append(costs.watch.mark())
        verified = verify(engine, tree)
        marks.append(costs.watch.mark())
        walk = settings.rule.evaluate(tree, verified.logits[0], settings.sampling, settings.rng)
        if costs.tally is not None:
            costs.tally.add(tree, walk, verified.logits[0], settings.sampling)
        seen = read_step(tree, walk, first_agreement(tree, verified.logits[0]))
        path = walk.path[: len(seen.nodes)]
        engine.keep(path + engine.length)
        emitted = [seen.tokens[n] for n in seen.nodes[1:]] + [seen.final]
        fresh = [root.token, *emitted[:-1]]
        root = Root(seen.final, root.ids + emitted, fresh, verified.last_hidden[:, path], seen.nodes, settings)
        elapsed = time.perf_counter() - t0
        with rec.bookkeeping():
            costs.add(tree, seen, marks)
            step, now = rec.steps + 1, rec.clock.now()
            events = [tree_event(step, settings.rule.name, tree, seen, tokenizer, now)]
            events += source.describe(step, tree, seen, tokenizer, now)
        yield from events
        yield rec.commit(
            emitted, elapsed, drafted=tree.topology.depth, accepted=len(seen.nodes) - 1, sources=source.labels(tree, seen)
        )
    with rec.bookkeeping():
        extras = {**source.summary(rec.output), **costs.summary()}
    yield rec.finished(extras)
