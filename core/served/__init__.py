"""Served models: AR, SoT and SGD against any OpenAI-compatible server (vLLM, SGLang, ``transformers serve``),
so the lab reaches models that do not fit this process. ``client``: the endpoint, streaming and its errors;
``methods``: the served methods, yielding the same trace events as the local ones."""

from core.served.client import Served, ServedError, api_base, check_models, complete, list_models, stream_chat
from core.served.methods import SERVED, SERVED_METHODS, base_method, baseline, served_ar, served_sgd, served_sot

__all__ = [
    "SERVED",
    "base_method",
    "baseline",
    "SERVED_METHODS",
    "Served",
    "ServedError",
    "api_base",
    "check_models",
    "complete",
    "list_models",
    "served_ar",
    "served_sgd",
    "served_sot",
    "stream_chat",
]
