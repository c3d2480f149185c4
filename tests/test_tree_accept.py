"""The greedy rule over a whole tree at once (``greedy_walk``, read back once: the accelerator's evaluate) against
the per-node walk it replaces there: the same path, final token, kind, colouring and p on random trees."""

import random

import pytest
import torch

from core.config import SamplingConfig
from core.speculative.drafts import DraftTree
from core.speculative.speculate import evaluate, greedy_walk, walk_tree
from core.speculative.tree import TreeTopology

V = 40


def random_parents(rng: random.Random, n: int) -> list[int]:
    """A tree in BFS order: each node's parent is a node of the previous depth."""
    parents, depth, levels = [-1], [0], [[0]]
    for _ in range(n - 1):
        d = rng.choice([d for d in range(len(levels)) if levels[d]]) if rng.random() < 0.6 else len(levels) - 1
        parents.append(rng.choice(levels[d]))
        depth.append(d + 1)
        if d + 1 == len(levels):
            levels.append([])
        levels[d + 1].append(len(parents) - 1)
    order = sorted(range(n), key=lambda i: (depth[i], i))  # renumber in BFS order
    index = {old: new for new, old in enumerate(order)}
    return [-1] + [index[parents[old]] for old in order[1:]]


def draft_tree(rng: random.Random, topo: TreeTopology, best: list[int], hit: float) -> DraftTree:
    """Children hit their parent's argmax with probability ``hit``; some nodes offer fewer children than they
    hold (the rest are padding copies, which may even equal the argmax) and some siblings are twins."""
    tokens = [0] * topo.size
    tree = DraftTree(topo, tokens)
    for node in range(topo.size):
        kids = topo.children(node)
        if not kids:
            continue
        tree.q[node] = torch.full((V,), 1 / V)
        for i, c in enumerate(kids):
            tokens[c] = best[node] if rng.random() < hit else rng.randrange(V)
            if i and rng.random() < 0.1:
                tokens[c] = tokens[kids[i - 1]]  # a twin: the walk takes the first
        if len(kids) > 1 and rng.random() < 0.3:
            tree.drawn[node] = rng.randrange(1, len(kids))
            for c in kids[tree.drawn[node] :]:
                tokens[c] = best[node]  # padding that would match: never offered
    return tree


def assert_same_walk(tree: DraftTree, logits: torch.Tensor) -> None:
    mine, walked = greedy_walk(tree, logits), walk_tree(tree, logits, "greedy", SamplingConfig(0.0), None)
    assert (mine.nodes, mine.final_token, mine.final_kind, mine.examined) == (
        walked.nodes,
        walked.final_token,
        walked.final_kind,
        walked.examined,
    )
    assert mine.p.keys() == walked.p.keys() and all(torch.equal(mine.p[n], walked.p[n]) for n in walked.p)


@pytest.mark.parametrize("seed", range(40))
def test_greedy_walk_equals_the_walk_on_random_trees(seed):
    rng = random.Random(seed)
    shapes = [
        TreeTopology.full(rng.randint(1, 4), rng.randint(0, 3)),
        TreeTopology.from_parents(random_parents(rng, rng.randint(1, 40))),
    ]
    for topo in shapes:
        logits = torch.randn(topo.size, V, generator=torch.Generator().manual_seed(seed))
        best = logits.argmax(-1).tolist()
        for hit in (0.3, 0.9):
            assert_same_walk(draft_tree(rng, topo, best, hit), logits)


def test_greedy_walk_accepts_a_whole_chain_and_ends_with_a_bonus_token():
    topo = TreeTopology.full(1, 3)
    logits = torch.randn(4, V, generator=torch.Generator().manual_seed(1))
    best = logits.argmax(-1).tolist()
    tree = DraftTree(topo, [7, best[0], best[1], best[2]], q={n: torch.full((V,), 1 / V) for n in range(3)})
    walk = greedy_walk(tree, logits)
    assert walk.nodes == [0, 1, 2, 3] and walk.final_token == best[3] and walk.final_kind == "bonus"
    root_only = DraftTree(TreeTopology.full(1, 0), [7])
    assert greedy_walk(root_only, logits[:1]).nodes == [0]


def test_evaluate_walks_on_the_cpu():
    """On the CPU the walk is the faster, so evaluate keeps it: a rule other than greedy still goes through it."""
    topo = TreeTopology.full(2, 1)
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(2))
    tree = DraftTree(topo, [7, 1, 2], q={0: torch.full((V,), 1 / V)})
    sampling, gen = SamplingConfig(temperature=1.0), torch.Generator().manual_seed(0)
    walk = evaluate(tree, logits, "rrs", sampling, gen)
    again = walk_tree(tree, logits, "rrs", sampling, torch.Generator().manual_seed(0))
    assert (walk.nodes, walk.final_token) == (again.nodes, again.final_token)
