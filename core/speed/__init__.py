"""SPEED: speculative pipelined execution with early-exit speculation (``pipeline``): the method
``speed``, its stage bounds, measured stage costs and the modelled parameter-shared speedup."""

from core.speed.pipeline import parameter_shared_model, run_speed, stage_bounds

__all__ = ["parameter_shared_model", "run_speed", "stage_bounds"]
