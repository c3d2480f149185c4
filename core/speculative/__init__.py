"""Speculative decoding with draft chains and trees: the step loop (``speculate``), draft sources
(``drafts``, ``copies``; EAGLE's is ``core.eagle``), tree topologies (``tree``), verification rules (``rules``);
methods spec, pld, rrs, rrsw, spechub (``run_speculative``)."""

from core.speculative.drafts import DraftChoice, DraftSettings, DraftSource, DraftTree, Root, make_draft_lm
from core.speculative.rules import RULES, Rule, Walk
from core.speculative.speculate import make_draft_source, run_speculative, speculate
from core.speculative.tree import TreeTopology

__all__ = [
    "RULES",
    "DraftChoice",
    "DraftSettings",
    "DraftSource",
    "DraftTree",
    "Root",
    "Rule",
    "TreeTopology",
    "Walk",
    "make_draft_lm",
    "make_draft_source",
    "run_speculative",
    "speculate",
]
