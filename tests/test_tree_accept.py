"""The greedy rule over a whole tree at once (``greedy_tree``, every node in one pass) against the level-by-level
device walk with the greedy node rule (``walk``): the same path, final token, kind and colouring on random
trees; and the walk's T > 0 steps emit tokens distributed as p at every depth of a tree."""

import random

import pytest
import torch

from core.config import SamplingConfig
from core.sampling import target_probs, uniforms
from core.speculative.drafts import DraftTree
from core.speculative.rules import rule, walk
from core.speculative.speculate import read_step
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
    tokens, offered = [0] * topo.size, [True] * topo.size
    for node in range(topo.size):
        kids = topo.children(node)
        for i, c in enumerate(kids):
            tokens[c] = best[node] if rng.random() < hit else rng.randrange(V)
            if i and rng.random() < 0.1:
                tokens[c] = tokens[kids[i - 1]]  # a twin: the walk takes the first
        if len(kids) > 1 and rng.random() < 0.3:
            for c in kids[rng.randrange(1, len(kids)) :]:
                tokens[c], offered[c] = best[node], False  # padding that would match: never offered
    ids = torch.tensor(tokens)
    return DraftTree(topo, ids, torch.ones(topo.size), offered=torch.tensor(offered))


def seen(tree, w):
    s = read_step(tree, w, torch.tensor(False))
    return s.nodes, s.final, s.final_kind, s.examined


@pytest.mark.parametrize("seed", range(40))
def test_the_one_pass_equals_the_walk_on_random_trees(seed):
    rng = random.Random(seed)
    shapes = [
        TreeTopology.full(rng.randint(1, 4), rng.randint(0, 3)),
        TreeTopology.from_parents(random_parents(rng, rng.randint(1, 40))),
    ]
    greedy = rule("greedy")
    for topo in shapes:
        logits = torch.randn(topo.size, V, generator=torch.Generator().manual_seed(seed))
        best = logits.argmax(-1).tolist()
        for hit in (0.3, 0.9):
            tree = draft_tree(rng, topo, best, hit)
            p = target_probs(logits, SamplingConfig(0.0))
            u = torch.zeros(topo.depth + 1, max(topo.k, 1) + 1)
            assert seen(tree, greedy.evaluate(tree, logits, SamplingConfig(0.0), None)) == seen(tree, walk(greedy, tree, p, u))


def test_a_whole_chain_is_accepted_and_ends_with_a_bonus_token():
    topo = TreeTopology.full(1, 3)
    logits = torch.randn(4, V, generator=torch.Generator().manual_seed(1))
    best = logits.argmax(-1).tolist()
    tree = DraftTree(topo, torch.tensor([7, best[0], best[1], best[2]]), torch.ones(4))
    nodes, final, kind, _ = seen(tree, rule("greedy").evaluate(tree, logits, SamplingConfig(0.0), None))
    assert nodes == [0, 1, 2, 3] and final == best[3] and kind == "bonus"
    root_only = DraftTree(TreeTopology.full(1, 0), torch.tensor([7]), torch.ones(1))
    assert seen(root_only, rule("greedy").evaluate(root_only, logits[:1], SamplingConfig(0.0), None))[0] == [0]


@pytest.mark.parametrize("name", ["rrs", "rrsw", "spechub"])
def test_the_walk_over_a_two_level_tree_emits_the_first_token_as_p(name):
    """A whole step at T = 1 on a k = 2, depth-2 tree whose q disagrees with p: the first emitted token (an
    accepted child of the root, or the root's residual draw) follows p at the root, over 4,000 steps."""
    topo = TreeTopology.full(2, 2)
    gen = torch.Generator().manual_seed(11)
    p_root = torch.tensor([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
    q_row = torch.tensor([0.05, 0.10, 0.40, 0.05, 0.30, 0.10])
    logits = torch.log(p_root).expand(topo.size, -1)
    verifier, counts = rule(name), torch.zeros(6)
    for _ in range(4000):
        kids, offered = verifier.children(q_row.expand(3, -1), 2, uniforms(gen, 6, p_root.device).view(3, 2))
        tokens = torch.cat([torch.tensor([0]), kids.flatten()])
        tree = DraftTree(topo, tokens, torch.ones(topo.size), q_row.expand(3, -1), torch.cat([torch.tensor([True]), offered.flatten()]))
        s = read_step(tree, verifier.evaluate(tree, logits, SamplingConfig(1.0), gen), torch.tensor(False))
        first = s.tokens[s.nodes[1]] if len(s.nodes) > 1 else s.final
        counts[first] += 1
    expected = p_root * counts.sum()
    assert float(((counts - expected) ** 2 / expected).sum()) < 20.5
