"""Small trained heads on a frozen target: exit heads (self-draft, SPEED, SGD's cheap pool member,
BPD's neural LM) and BPD heads; their files, self-distillation data, training and measurement.
``python -m core.train`` (``core/train.py``) is the command line."""

from core.heads.modules import (
    DEFAULT_EXIT_LAYER,
    HeadInfo,
    Heads,
    ResidualHead,
    bpd_heads_path,
    check_exit_layer,
    exit_head_path,
    fitted_exit_layer,
    head_logits,
    lm_projection,
    load_exit_head,
)

__all__ = [
    "DEFAULT_EXIT_LAYER",
    "HeadInfo",
    "Heads",
    "ResidualHead",
    "bpd_heads_path",
    "check_exit_layer",
    "exit_head_path",
    "fitted_exit_layer",
    "head_logits",
    "lm_projection",
    "load_exit_head",
]
