"""Skeleton-of-Thought (``sot``) and Skeleton Graph Decoding (``sgd``) (docs/methods.md, "Skeletons").

SoT (Ning et al.): the model writes a skeleton of 3-10 short points (``core.skeleton.writer``,
constrained so that it always parses); every point is then expanded in one batched decode,
one row per point (``core.engine.rows.decode_rows``); the answers are joined in order.

SGD (Jin et al.): the skeleton also gives each point's dependencies and a difficulty; the
points form a DAG; each wave of ready points (parents finished) is decoded as one batch;
a dependent point's prompt carries its parents' finished answers; the difficulty picks a member from
the pool (``core.skeleton.pool``) and a wave runs on the most capable member any of its points was
given (``wave_members``).

Timing: the skeleton is part of the wall-clock; only the answer's tokens (the expansions)
count as generated tokens. Each point gets ``point_tokens`` tokens (default and most: the
run's max new tokens shared between the points), so the answer never exceeds the budget AR gets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from core.config import GenerationConfig
from core.heads import fitted_exit_layer
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import make_generator
from core.skeleton.format import (
    Skeleton,
    join_points,
    parse_or_fallback,
    point_opening,
    skeleton_graph,
    waves,
    written_points,
)
from core.skeleton.pool import DEFAULT_POOL_LAYER, PoolMember, full_member, make_pool, member_index, wave_members
from core.engine.rows import decode_rows
from core.skeleton.writer import write_skeleton
from core.text import IncrementalDetokenizer, encode_prompt
from core.trace import Forwarded, NodeStep, SkeletonReady

ITEM_NUMBER = re.compile(r"[\s:*(]*\d{1,2}\s*$")


def answer_opening(skeleton: Skeleton, node: int, answers: dict[int, str], forward: bool = True) -> str:
    """The answer a point's row continues, after the question as the user asked it: its parents' finished
    points (SGD, ``forward``), then "{index}. {title}:". Why not the SoT paper's instruction prompt: the 135M
    model continues a point after the plain question more plausibly, and the rows' prompts are shorter
    (docs/methods.md, "Skeletons")."""
    parents = written_points(skeleton, skeleton.points[node].depends, answers) if forward else []
    return "\n".join([*parents, point_opening(node + 1, skeleton.points[node].title)])


def fit_points(sk: Skeleton, max_new_tokens: int) -> str | None:
    """Keep the first ``max_new_tokens`` points when there are more (each point needs a token); a notice."""
    if len(sk.points) <= max_new_tokens:
        return None
    dropped = len(sk.points) - max_new_tokens
    sk.points = sk.points[:max_new_tokens]
    for p in sk.points:
        p.depends = [d for d in p.depends if d < max_new_tokens]
    return f"Max new tokens ({max_new_tokens}) gives a token to {max_new_tokens} points at most: {dropped} left out."


def point_budget(max_new_tokens: int, points: int, point_tokens: int) -> tuple[int, str | None]:
    """Tokens per point so that all points together stay within ``max_new_tokens``: ``point_tokens`` (0: an
    even share), capped at the share; returns (budget, a notice when the user's value was capped)."""
    share = max_new_tokens // points
    if point_tokens > share:
        return share, (
            f"Tokens per point capped at {share}: {points} points x {point_tokens} would exceed max new tokens "
            f"({max_new_tokens}), the budget AR gets."
        )
    return point_tokens or share, None


@excluding_consumer_time
def run_skeleton(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str,
    graph: bool,
    skeleton: str = "",
    point_tokens: int = 0,
    pool_models: list[LoadedModel] | None = None,
    layer: int | None = None,
    forward: bool = True,
) -> Iterator:
    """Yield RunStarted, notices (skeleton repairs), SkeletonReady, per dependent point a Forwarded (``forward``:
    its parents' text is in its prompt; off, the same waves without it, to measure what forwarding is worth), per
    batched forward a NodeStep and a StepCommitted, then RunFinished (extras: nodes, waves, mean_nodes_per_wave,
    edges, forwarded_tokens, difficulty and member per point, skeleton_s)."""
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    layer = fitted_exit_layer(model.config.num_hidden_layers, layer, DEFAULT_POOL_LAYER)
    if point_tokens < 0:
        raise ValueError(f"Tokens per point must be 0 (an even share of max new tokens) or more, got {point_tokens}.")
    written_by = "user" if skeleton.strip() else "model"
    options = {"graph": graph, "layer": layer, "skeleton": written_by, "forward": forward}
    rec = Recorder(name, model, prompt, prompt_ids, gen, options=options)
    yield rec.started()
    t0 = time.perf_counter()
    sk, forwards = (parse_or_fallback(skeleton, graph), 0) if skeleton.strip() else write_skeleton(model, prompt, graph)
    skeleton_s = time.perf_counter() - t0
    fitted = fit_points(sk, gen.max_new_tokens)
    plan = waves(skeleton_graph(sk)) if graph else [list(range(len(sk.points)))]
    pool, notice = make_pool(model, pool_models or [], layer) if graph else ([full_member(model)], None)
    member_of = wave_members(plan, [member_index(p.difficulty, len(pool)) if graph else 0 for p in sk.points])
    budget, capped = point_budget(gen.max_new_tokens, len(sk.points), point_tokens)
    for message in [*sk.warnings, fitted, notice, capped]:
        if message:
            yield rec.notice(message)
    for message in sk.notes:
        yield rec.notice(message, level="info")
    yield SkeletonReady(
        text=sk.text,
        titles=[p.title for p in sk.points],
        depends=[list(p.depends) for p in sk.points],
        difficulty=[p.difficulty if graph else 0 for p in sk.points],
        models=[pool[i].name for i in member_of],
        waves=plan,
        warnings=list(sk.warnings),
        forwards=forwards,
        skeleton_s=skeleton_s,
        t=rec.clock.now(),
    )
    answers: dict[int, str] = {}
    rng = make_generator(gen.sampling.seed, model.device)
    forwarded = 0
    for w, nodes in enumerate(plan):
        member = pool[member_of[nodes[0]]]
        for node in nodes if graph and forward else []:
            if sk.points[node].depends:
                sent = _forwarded(sk, node, answers, member.model, rec)
                forwarded += sent.tokens
                yield sent
        yield from _decode_wave(prompt, sk, w, nodes, member, answers, budget, gen, rng, rec, forward)
    rec.answered(join_points([p.title for p in sk.points], [answers.get(i, "") for i in range(len(sk.points))]))
    yield rec.finished(
        {
            "nodes": len(sk.points),
            "waves": len(plan),
            "mean_nodes_per_wave": len(sk.points) / len(plan),
            "edges": sum(len(p.depends) for p in sk.points),
            "forwarded_tokens": forwarded,
            "difficulty": [p.difficulty for p in sk.points] if graph else [],
            "members": [pool[i].name for i in member_of],
            "skeleton_s": skeleton_s,
            "skeleton_forwards": forwards,
        }
    )


def _forwarded(sk: Skeleton, node: int, answers: dict[int, str], model: LoadedModel, rec: Recorder) -> Forwarded:
    """What point ``node``'s prompt carries from its parents (their finished points), off the clock."""
    t0 = time.perf_counter()
    parents = sk.points[node].depends
    texts = written_points(sk, parents, answers)
    tokens = len(model.tokenizer("\n".join(texts), add_special_tokens=False)["input_ids"])
    rec.clock.exclude(time.perf_counter() - t0)
    return Forwarded(node=node, parents=list(parents), texts=texts, tokens=tokens, t=rec.clock.now())


def _decode_wave(
    question, sk, w, nodes, member: PoolMember, answers, budget, gen, rng, rec: Recorder, forward: bool
) -> Iterator:
    """One wave: its points as one batch of rows on the wave's member."""
    prompts = [
        encode_prompt(member.model, question, budget, answer_prefix=answer_opening(sk, n, answers, forward))
        for n in nodes
    ]
    detok = {n: IncrementalDetokenizer(member.model.tokenizer) for n in nodes}
    rows = decode_rows(member, prompts, [budget] * len(nodes), gen.sampling, rng, one_item=True)
    while True:
        t1 = time.perf_counter()
        step = next(rows, None)
        if step is None:
            return
        elapsed = time.perf_counter() - t1
        pieces = {}
        for r in step:
            node = nodes[r.row]
            eos = r.token in member.model.eos_ids
            pieces[node] = "" if eos else detok[node].add([r.token])[0]
            answers[node] = answers.get(node, "") + pieces[node]
            if r.item_end:  # it began the next point: its number is not this point's text
                answers[node] = ITEM_NUMBER.sub("", answers[node])
        yield NodeStep(
            wave=w,
            model=member.name,
            nodes=[nodes[r.row] for r in step],
            texts=[pieces[nodes[r.row]] for r in step],
            done=[r.done for r in step],
            t=rec.clock.now(),
        )
        kept = [r for r in step if r.token not in member.model.eos_ids]
        yield rec.commit(
            [r.token for r in kept],
            elapsed,
            texts=[pieces[nodes[r.row]] for r in kept],
            sources=[f"node {nodes[r.row] + 1}" for r in kept],
        )


def run_sot(model: LoadedModel, prompt: str, gen: GenerationConfig, **options) -> Iterator:
    return run_skeleton(model, prompt, gen, **{"name": "sot", **options, "graph": False})


def run_sgd(model: LoadedModel, prompt: str, gen: GenerationConfig, **options) -> Iterator:
    return run_skeleton(model, prompt, gen, **{"name": "sgd", **options, "graph": True})
