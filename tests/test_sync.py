"""Host reads per step (docs/methods.md, "GPU engine"): a decode loop reads device tensors through one hook only
(``core.engine.sync.host``, counted), ar once per token and a speculative step at most twice (the accepted
path and what the trace needs, packed; and a source's one read before verifying). Any other read of a tensor
(``int(t)``, ``t.tolist()``, ``bool(t)``, ...) is a stray: on a GPU each one would wait for the device. Here
every tensor conversion is patched to count strays during a run. On CUDA, test_gpu.py counts the
synchronisations themselves (``torch.cuda.set_sync_debug_mode``)."""

import sys
from contextlib import contextmanager

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.engine.sync import host, reads
from core.metrics import summarize
from core.registry import METHODS
from core.trace import RunFinished

CONVERSIONS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy")
SPECULATIVE = ["spec", "pld", "rrs", "rrsw", "spechub", "bpd", "eagle"]


@contextmanager
def stray_reads():
    """Count reads of tensors outside the hook (and who made them) while the block runs."""
    strays: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in CONVERSIONS}

    def counted(name, original):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1)
            if not (caller.f_code.co_name == "host" and caller.f_code.co_filename.endswith("sync.py")):
                strays.append(f"{name} at {caller.f_code.co_filename.split('/')[-1]}:{caller.f_lineno}")
            return original(self, *args, **kwargs)

        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counted(name, original))
    try:
        yield strays
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def run_counted(model, name, gen, **options):
    list(METHODS[name].run(model, "Tell me about the sea and the sky", gen, **options))  # warm: heads, caches
    before = reads()
    with stray_reads() as strays:
        events = list(METHODS[name].run(model, "Tell me about the sea and the sky", gen, **options))
    finished = next(e for e in events if isinstance(e, RunFinished))
    return summarize(events), reads() - before, finished.extras["host_reads"], strays


def test_the_hook_counts_and_strays_are_caught():
    t = torch.arange(3)
    before = reads()
    with stray_reads() as strays:
        assert host(t) == [0, 1, 2]
        int(t[0])
    assert reads() - before == 1 and len(strays) == 1


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_ar_reads_once_per_token(tiny, temperature):
    m, n, recorded, strays = run_counted(tiny, "ar", GenerationConfig(16, SamplingConfig(temperature, seed=1)))
    assert strays == [] and n == recorded == m.tokens == 16


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("name", SPECULATIVE)
def test_a_speculative_step_reads_at_most_twice(tiny, tiny_eagle_head, tiny_vocab, name, temperature):
    options = {"layer": 2} if name in ("spec", "rrs", "rrsw", "spechub") else {}
    m, n, recorded, strays = run_counted(tiny, name, GenerationConfig(16, SamplingConfig(temperature, seed=1)), **options)
    steps = m.forwards
    assert strays == [], strays
    assert n == recorded and n <= 2 * steps, (n, steps)


def test_speed_reads_once_per_tick(tiny):
    m, n, recorded, strays = run_counted(tiny, "speed", GenerationConfig(16), layer=2)
    assert strays == [] and n == recorded == m.extras["ticks"]
