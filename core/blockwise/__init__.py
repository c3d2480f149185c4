"""Blockwise Parallel Decoding: the method (``bpd``: bpd, bpd-ngram, bpd-neural), Kim et al.'s lattice
refinement (``refine``), the n-gram LM (``ngram``) and the head analysis (``analysis``). The heads
themselves are trained in ``core.heads``."""

from core.blockwise.bpd import BLOCK, BlockDrafter, bpd_heads_info, run_bpd

__all__ = ["BLOCK", "BlockDrafter", "bpd_heads_info", "run_bpd"]
