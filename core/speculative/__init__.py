"""Speculative decoding with draft chains and trees: the step loop (``speculate``), draft sources
(``drafts``), tree topologies (``tree``), verification rules (``verify``); methods spec, pld, rrs,
rrsw and spechub (``run_speculative``)."""

from core.speculative.drafts import DraftChoice, DraftSource, DraftTree, make_draft_lm
from core.speculative.speculate import make_draft_source, run_eagle, run_speculative, speculate
from core.speculative.tree import TreeTopology
from core.speculative.verify import Walk

__all__ = [
    "DraftChoice",
    "DraftSource",
    "DraftTree",
    "TreeTopology",
    "Walk",
    "make_draft_lm",
    "make_draft_source",
    "run_eagle",
    "run_speculative",
    "speculate",
]
