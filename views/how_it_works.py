"""How it works: each method in a few paragraphs and a diagram, with a link to its page."""

import streamlit as st

st.title("How it works")
st.caption(
    "The speculative methods (draft trees, BPD, SPEED) are lossless: they produce exactly what plain "
    "autoregressive decoding would (token for token at temperature 0, the same distribution when sampling). "
    "What changes is how many tokens each forward of the big model commits, and what the extra work costs. "
    "Skeleton-of-Thought and SGD are not: they change the answer's shape to decode its parts in parallel."
)

SECTIONS = [
    (
        "Autoregressive decoding (the baseline)",
        "views/autoregressive.py",
        """
A language model maps the tokens so far to a distribution p over the next token. Autoregressive (AR)
decoding runs one forward per token: prefill the prompt once (filling the KV cache, the keys and values
of every layer for every position), then feed one new token at a time, reading the cache instead of
recomputing the past. At temperature 0 it takes the argmax; otherwise it samples from p after
temperature, top-k and top-p. On small models one forward is bounded by reading the weights from
memory, so a forward of 8 tokens costs little more than a forward of 1: the idea every other method
exploits.""",
        """digraph { rankdir=TB; node [shape=box, style=rounded];
prompt -> "prefill\n(all prompt tokens)" -> "KV cache" -> "forward 1 token" -> "p" -> "x_t";
"x_t" -> "forward 1 token" [label="next step", constraint=false]; }""",
    ),
    (
        "Speculative decoding with draft trees (RRS, RRSw, SpecHub)",
        "views/draft_trees.py",
        """
A cheap draft (here: the model's own first layers plus a trained exit head, a separate small model,
or n-gram lookup in the prompt) proposes a tree: k candidate tokens per node, L levels deep. The big
model checks the whole tree in one forward, with an attention mask that lets each node see only its
ancestors. A verification rule then walks from the root, accepting at most one child per node:
RRS draws children independently from the draft's q and accepts child x with probability
min(1, r(x)/q(x)), moving the residual r = norm(max(r - q, 0)) on each rejection; RRSw draws distinct
children; SpecHub always pairs the draft's top token with a second one and solves the optimal transport
in closed form. When a child is rejected, a token is drawn from the residual and the step ends; the KV
cache keeps only the accepted path.""",
        """digraph { rankdir=LR; node [shape=circle, width=0.4, fixedsize=true];
r [label="root", style=filled, fillcolor="#cbd5e1"]; a [style=filled, fillcolor="#86efac"];
b [style=filled, fillcolor="#fca5a5"]; c [style=filled, fillcolor="#86efac"]; d; e; f;
r -> a; r -> b; a -> c; a -> d; b -> e; b -> f; c -> "bonus" [style=dashed]; }""",
    ),
    (
        "Blockwise parallel decoding (BPD) and draft refinement",
        "views/blockwise.py",
        """
Besides its LM head, the model gets k - 1 small trained heads that read the same last hidden state h_t
and guess the tokens 2, 3, ... k ahead. A step drafts the block [base token, head 1, ..., head k-1],
one forward checks it (the model's own argmax at every position), keeps the longest prefix it agrees with
plus its own token at the first disagreement, and the hidden state at the last kept position drafts the
next block: predicting and verifying share one call. Refinement (Kim et al.) keeps each head's top-k
tokens as a lattice, rescores paths with sum log q_head + alpha log p_LM using an n-gram model (every
path) or a small neural model (a beam), and verifies the p best drafts at once as a tree.""",
        """digraph { rankdir=TB; node [shape=box];
h [label="h_t"]; h -> base; h -> "head 1"; h -> "head 2";
base -> block; "head 1" -> block; "head 2" -> block;
v [label="one forward:\naccept prefix\n+ base token"]; block -> v; v -> h [label="next h_t", constraint=false]; }""",
    ),
    (
        "Skeleton-of-Thought and Skeleton Graph Decoding",
        "views/skeleton_graph.py",
        """
The model first writes a short skeleton of the answer, one line per point (the format is enforced token by
token, so even a 135M model's skeleton parses). Skeleton-of-Thought then expands every point at the same
time: one batched forward per step serves every point, which costs little more than a single row. Skeleton
Graph Decoding also asks, per point, which earlier points it depends on and how hard it is: the points form
a graph, each wave of ready points is decoded as a batch with its parents' finished answers in the prompt,
and easy points go to a cheaper model of the pool.""",
        """digraph { rankdir=LR; node [shape=circle, width=0.4, fixedsize=true];
1 -> 3; 2 -> 3; 3 -> 4; {rank=same; 1; 2;} }""",
    ),
    (
        "SPEED: speculative pipelined execution",
        "views/pipeline.py",
        """
The layers are split into stages. Token t runs through the later stages while an early-exit guess of
token t+1 (read off the hidden state after the first stage) already runs through the earlier ones.
When t leaves the last stage, its real next token is known: if the guess was right the work on it is
kept, otherwise it is flushed and the right token starts again. On a decoder whose stages share
weights the tokens in flight go through them in one batched call, which is where the paper's gain
comes from; on a standard decoder a tick costs about a full forward, and the page says so beside
the measured time.""",
        """digraph { rankdir=TB; node [shape=box];
subgraph cluster_1 { label="tick n"; s1 [label="stage 1:\nguess t+1"]; s2 [label="stage 2:\ntoken t"]; }
s2 -> check [label="real t+1"]; s1 -> check [label="guess"]; check -> keep [label="same"];
check -> flush [label="different"]; }""",
    ),
    (
        "Comparing and benchmarking",
        "views/compare.py",
        """
Every run is a trace: a list of plain events (run started, each step's committed tokens, the draft tree
of a step, a pipeline tick, run finished). Pages render traces, so a live run and a recorded one look the
same; traces download as JSON and load back on their method's page. The Compare page runs any methods on
one prompt beside AR; the Benchmark page runs the command-line benchmark on a prompt suite.""",
        None,
    ),
]

for title, page, text, dot in SECTIONS:
    st.header(title)
    left, right = st.columns([3, 2])
    left.markdown(text.strip())
    left.page_link(page, label=f"Open {title.split(' (')[0].split(':')[0]}", icon=":material/arrow_forward:")
    if dot:  # drawn at its own size (text at 14 pt, above 12 px at 100% zoom), never shrunk to the column
        right.graphviz_chart(dot.replace("{", "{ graph [fontsize=14]; node [fontsize=14]; edge [fontsize=13];", 1))
