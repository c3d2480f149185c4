"""The draft-tree methods ``spec``, ``pld``, ``rrs``, ``rrsw`` and ``spechub`` (docs/methods.md, "Draft trees"):
``run_speculative`` picks a draft source by name (the self-draft, a draft model, prompt lookup or EAGLE's
feature head) and runs the shared step loop (``core.speculative.speculate``) with a verification rule. It sits
above both the speculative package and ``core.eagle``, whose own method (``eagle``) uses the same step loop.

``spec``: a single chain from the self-draft (Leviathan et al.: rrs with k = 1); ``pld``: a single chain from
prompt lookup; ``rrs``, ``rrsw``, ``spechub``: trees.
"""

from __future__ import annotations

from collections.abc import Iterator

from core.config import GenerationConfig
from core.eagle.drafter import make_feature_drafter
from core.engine import Engine, make_engine
from core.engine.cost import device_curve
from core.heads import fitted_exit_layer
from core.models import LoadedModel
from core.recorder import Recorder, excluding_consumer_time
from core.sampling import make_generator
from core.speculative import DraftChoice, DraftSettings, DraftSource, TreeTopology, make_draft_lm, speculate
from core.speculative.copies import PromptLookup
from core.speculative.drafts import LevelDrafter, default_depth
from core.speculative.rules import rule as rule_named
from core.text import encode_prompt


def make_draft_source(
    model: LoadedModel, engine: Engine, choice: DraftChoice, max_len: int
) -> tuple[DraftSource, str | None]:
    """``lookup``, ``eagle`` (the feature head, k-ary trees), or a ``LevelDrafter`` over ``make_draft_lm``;
    returns (source, notice)."""
    if choice.draft == "lookup":
        return PromptLookup(model.model.lm_head.out_features, model.device, curve=device_curve(model)), None
    if choice.draft == "eagle":
        return make_feature_drafter(model, engine, max_len), None
    lm, notice = make_draft_lm(model, engine, choice, max_len)
    return LevelDrafter(lm), notice


@excluding_consumer_time
def run_speculative(
    model: LoadedModel,
    prompt: str,
    gen: GenerationConfig,
    *,
    name: str = "rrs",
    rule: str = "rrs",
    k: int = 2,
    depth: int | None = None,
    draft: str = "self",
    layer: int | None = None,
    draft_model: LoadedModel | None = None,
    draft_vocab: str = "reduced",
) -> Iterator:
    """Yield RunStarted, then per step a TreeStep and a StepCommitted, then RunFinished. ``draft``: self,
    model, lookup or eagle; ``depth``: None for the draft's own default (``DEPTHS``); ``draft_vocab``: reduced
    or full (what the self-draft's exit head projects onto)."""
    depth = default_depth(draft) if depth is None else depth
    prompt_ids = encode_prompt(model, prompt, gen.max_new_tokens)
    layer = fitted_exit_layer(model.config.num_hidden_layers, layer)
    verifier = rule_named(rule)
    verifier.check(k)  # checked before T = 0 turns every rule greedy
    topo = TreeTopology.full(k, depth)
    verifier = rule_named("greedy") if gen.sampling.greedy else verifier
    if draft == "lookup" and k != 1:
        raise ValueError(f"The {draft} draft is a single chain: set k = 1.")
    options = {"rule": verifier.name, "k": k, "depth": depth, "draft": draft, "layer": layer, "draft_vocab": draft_vocab}
    rec = Recorder(name, model, prompt, prompt_ids, gen, options=options)
    yield rec.started()
    max_len = len(prompt_ids) + gen.max_new_tokens + topo.size + 1
    engine = make_engine(model, batch=1, max_len=max_len)
    choice = DraftChoice(draft, layer, draft_model, draft_vocab)
    source, notice = make_draft_source(model, engine, choice, max_len)
    if notice:
        yield rec.notice(notice)
    settings = DraftSettings(topo, verifier, gen.sampling, make_generator(gen.sampling.seed, model.device))
    yield from speculate(rec, engine, source, settings)

