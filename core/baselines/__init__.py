"""The baselines every method is measured against: ``ar`` (this project's engine, one forward per
token) and ``hf`` (transformers' own ``generate``, also its prompt lookup and assisted generation)."""

from core.baselines.ar import run_ar
from core.baselines.hf import run_hf

__all__ = ["run_ar", "run_hf"]
