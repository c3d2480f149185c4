"""Skeleton-of-Thought and Skeleton Graph Decoding: the skeleton format and parser (``format``), the
constrained writer (``writer``), the dependency deciders (``dependencies``), the model pool (``pool``) and the
methods sot and sgd (``decode``); their answers' quality proxies and judges are ``core.quality``."""

from core.skeleton.decode import run_sgd, run_sot
from core.skeleton.format import Skeleton, join_points, parse_skeleton, skeleton_graph, waves
from core.skeleton.pool import CHEAP_LAYER, DEFAULT_POOL_LAYER
from core.skeleton.writer import write_skeleton

__all__ = [
    "CHEAP_LAYER",
    "DEFAULT_POOL_LAYER",
    "Skeleton",
    "join_points",
    "parse_skeleton",
    "run_sgd",
    "run_sot",
    "skeleton_graph",
    "waves",
    "write_skeleton",
]
