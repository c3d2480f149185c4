"""Skeleton-of-Thought (``sot``) and Skeleton Graph Decoding (``sgd``), METHODS.md section 1.

SoT (Ning et al.): the model writes a skeleton of 3-10 short points (``core.skeleton``,
constrained so that it always parses); every point is then expanded in one batched
decode, one row per point (``core.batch.decode_rows``); the answers are joined in order.

SGD (Jin et al.): the skeleton also gives each point's dependencies and a difficulty; the
points form a DAG; each wave of ready points (parents finished) is decoded as one batch
per pool member, the members of a wave in lockstep; a dependent point's prompt carries its
parents' finished answers; the difficulty picks the member from the pool, cheap to
expensive (by default: the model's first e layers + its exit head for difficulty 1, the
full model for 2-5; or any models the user adds, cheapest first, then the full model).

Timing: the skeleton is part of the wall-clock; only the answer's tokens (the expansions)
count as generated tokens. Each point gets ``point_tokens`` tokens (default: the run's
max new tokens shared between the points, at least 16), so both answers have the same budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from core.batch import PoolMember, decode_rows
from core.config import GenerationConfig
from core.engine import engine_kind
from core.heads import load_exit_head
from core.methods.recorder import Recorder, excluding_consumer_time
from core.models import LoadedModel
from core.sampling import make_generator
from core.skeleton import (
    EXPAND_PROMPT,
    PARENTS_BLOCK,
    Skeleton,
    join_points,
    parse_skeleton,
    skeleton_graph,
    waves,
    write_skeleton,
)
from core.text import IncrementalDetokenizer, encode_prompt
from core.trace import NodeStep, SkeletonReady, StepCommitted

DEFAULT_POOL_LAYER = 15  # half of the embedded model's 30 layers; its exit head is shipped


def full_member(model: LoadedModel) -> PoolMember:
    return PoolMember(f"{model.key} (full)", model)


def make_pool(model: LoadedModel, extra: list[LoadedModel], layer: int) -> tuple[list[PoolMember], str | None]:
    """Members cheapest first, the full model last; without ``extra`` models, the first ``layer`` layers
    of the model with its exit head (llama engine only) as the cheap member; ``layer`` 0: the full model alone."""
    if extra:
        return [PoolMember(m.key, m) for m in extra] + [full_member(model)], None
    if layer == 0:
        return [full_member(model)], None
    if engine_kind(model) != "llama":
        return [full_member(model)], "This model runs on the fallback engine (no layer ranges): the pool is it alone."
    head, notice = load_exit_head(model, layer)
    cheap = PoolMember(f"{model.key} layers 0-{layer - 1} + exit head", model, range(layer), head)
    return [cheap, full_member(model)], notice


def member_index(difficulty: int, size: int) -> int:
    """Difficulty 1-5 to a pool index, cheapest first: ceil((d - 1) (n - 1) / 4), so only the easiest points
    go to the cheapest member (2 members: 1 | 2-5; 3 members: 1 | 2-3 | 4-5)."""
    return min(size - 1, -(-(difficulty - 1) * (size - 1) // 4))


def expansion_prompt(question: str, skeleton: Skeleton, node: int, answers: dict[int, str]) -> str:
    parents = skeleton.points[node].depends
    block = (
        PARENTS_BLOCK.format(answers="\n".join(f"{j + 1}. {answers[j].strip()}" for j in parents)) if parents else ""
    )
    return EXPAND_PROMPT.format(
        question=question,
        skeleton=skeleton.listing(),
        parents=block,
        index=node + 1,
        title=skeleton.points[node].title,
    )


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
    layer: int = DEFAULT_POOL_LAYER,
) -> Iterator:
    """Yield RunStarted, notices (skeleton repairs), SkeletonReady, per batched forward a NodeStep and
    a StepCommitted, then RunFinished (extras: nodes, waves, mean_nodes_per_wave, skeleton_s)."""
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    if point_tokens < 0 or point_tokens > gen.max_new_tokens:
        raise ValueError(f"Tokens per point must be between 1 and max new tokens ({gen.max_new_tokens}).")
    written_by = "user" if skeleton.strip() else "model"
    rec = Recorder(
        name, model, prompt, prompt_ids, gen, options={"graph": graph, "layer": layer, "skeleton": written_by}
    )
    yield rec.started()
    t0 = time.perf_counter()
    sk, forwards = (parse_skeleton(skeleton, graph), 0) if skeleton.strip() else write_skeleton(model, prompt, graph)
    skeleton_s = time.perf_counter() - t0
    dag = skeleton_graph(sk)
    plan = waves(dag) if graph else [list(range(len(sk.points)))]
    pool, notice = make_pool(model, pool_models or [], layer) if graph else ([full_member(model)], None)
    member_of = [member_index(p.difficulty, len(pool)) if graph else 0 for p in sk.points]
    for message in [*sk.warnings, *([notice] if notice else [])]:
        yield rec.notice(message)
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
    budget = point_tokens or max(16, gen.max_new_tokens // len(sk.points))
    answers: dict[int, str] = {}
    rng = make_generator(gen.sampling.seed, model.device)
    for w, nodes in enumerate(plan):
        yield from _decode_wave(prompt, sk, w, nodes, pool, member_of, answers, budget, gen, rng, rec)
    text = join_points([p.title for p in sk.points], [answers.get(i, "") for i in range(len(sk.points))])
    rec.output = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    rec.stop_reason = "answered"
    yield rec.finished(
        {
            "nodes": len(sk.points),
            "waves": len(plan),
            "mean_nodes_per_wave": len(sk.points) / len(plan),
            "skeleton_s": skeleton_s,
            "skeleton_forwards": forwards,
        }
    )


def _decode_wave(question, sk, w, nodes, pool, member_of, answers, budget, gen, rng, rec) -> Iterator:
    """One wave: a batch per pool member, all members stepped in lockstep (round robin)."""
    streams = []
    for m in sorted({member_of[n] for n in nodes}):
        member = pool[m]
        mine = [n for n in nodes if member_of[n] == m]
        prompts = [encode_prompt(member.model, expansion_prompt(question, sk, n, answers), budget) for n in mine]
        detok = {n: IncrementalDetokenizer(member.model.tokenizer) for n in mine}
        streams.append((member, mine, detok, decode_rows(member, prompts, [budget] * len(mine), gen.sampling, rng)))
    while streams:
        for stream in list(streams):
            member, mine, detok, rows = stream
            t1 = time.perf_counter()
            step = next(rows, None)
            if step is None:
                streams.remove(stream)
                continue
            elapsed = time.perf_counter() - t1
            ids, texts, done = [], [], []
            for r in step:
                node = mine[r.row]
                eos = r.token in member.model.eos_ids
                piece = "" if eos else detok[node].add([r.token])[0]
                answers[node] = answers.get(node, "") + piece
                ids += [] if eos else [r.token]
                texts.append(piece)
                done.append(r.done)
            nodes_now = [mine[r.row] for r in step]
            yield NodeStep(wave=w, model=member.name, nodes=nodes_now, texts=texts, done=done, t=rec.clock.now())
            rec.steps += 1
            yield StepCommitted(
                step=rec.steps,
                token_ids=ids,
                texts=[t for t, r in zip(texts, step, strict=True) if r.token not in member.model.eos_ids],
                t=rec.clock.now(),
                forward_s=elapsed,
                forwards=1,
                sources=[f"node {mine[r.row] + 1}" for r in step if r.token not in member.model.eos_ids],
            )


def run_sot(model: LoadedModel, prompt: str, gen: GenerationConfig, **options) -> Iterator:
    return run_skeleton(model, prompt, gen, **{"name": "sot", **options, "graph": False})


def run_sgd(model: LoadedModel, prompt: str, gen: GenerationConfig, **options) -> Iterator:
    return run_skeleton(model, prompt, gen, **{"name": "sgd", **options, "graph": True})
