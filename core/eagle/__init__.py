"""EAGLE in one place, read like the paper (docs/methods.md, "EAGLE"):

- ``head``: the draft head, one decoder layer over the target's own features f and the next token's embedding;
- ``tree``: EAGLE-2's dynamic tree, expanded on the device with fixed shapes;
- ``drafter``: the draft source on the shared step loop (propose here; tree forward, evaluate and update in
  ``core.speculative.speculate``) and the ``eagle`` method;
- ``training``: the head trained on the target's features over the self-distillation corpus.
"""

from core.eagle.drafter import FeatureDrafter, make_feature_drafter, run_eagle
from core.eagle.tree import MAX_CHAIN, MAX_DYNAMIC_NODES, DynamicTree

__all__ = ["MAX_CHAIN", "MAX_DYNAMIC_NODES", "DynamicTree", "FeatureDrafter", "make_feature_drafter", "run_eagle"]
