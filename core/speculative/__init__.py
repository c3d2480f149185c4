"""Speculative decoding with draft chains and trees: the step loop (``speculate``), draft sources
(``drafts``, ``copies``; EAGLE's is ``core.eagle``), tree topologies (``tree``), verification rules (``rules``);
the methods that pick a source by name are ``core.draft_trees``."""

from core.speculative.drafts import DraftChoice, DraftSettings, DraftSource, DraftTree, Root, make_draft_lm
from core.speculative.rules import RULES, Rule, Walk
from core.speculative.speculate import speculate
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
    "speculate",
]
