import pytest

from core.config import GenerationConfig
from core.metrics import speedup, summarize
from core.registry import METHODS
from core.trace import Notice, RunFinished, RunStarted, StepCommitted, dumps, loads


def hand_trace():
    return [
        RunStarted("spec", "m", "cpu", "float32", "hi", [1, 2], {"k": 2}, 0.0),
        StepCommitted(
            1,
            [5, 6, 7],
            ["a", "b", "c"],
            0.3,
            0.3,
            forwards=1,
            drafted=3,
            accepted=2,
            sources=["draft", "draft", "bonus"],
        ),
        Notice("warning", "repaired", 0.35),
        StepCommitted(2, [8], ["d"], 0.5, 0.2, forwards=1, drafted=3, accepted=0, sources=["target"]),
        RunFinished([5, 6, 7, 8], "abcd", 0.5, "max_new_tokens", 0.5),
    ]


def test_round_trip_preserves_every_event():
    events = hand_trace()
    assert loads(dumps(events)) == events


def test_round_trip_of_a_real_run(tiny):
    events = list(METHODS["ar"].run(tiny, "Hi", GenerationConfig(5)))
    assert loads(dumps(events)) == events


@pytest.mark.parametrize(
    "text, words",
    [
        ("{", "not JSON"),
        ('{"a": 1}', "not a Decoding Lab trace"),
        ('{"events": [{"kind": "alien"}]}', "Unknown trace event"),
    ],
)
def test_bad_trace_files_are_rejected_clearly(text, words):
    with pytest.raises(ValueError, match=words):
        loads(text)


def test_metrics_from_a_hand_made_trace():
    m = summarize(hand_trace())
    assert m.tokens == 4 and m.forwards == 2 and m.wall_s == 0.5
    assert m.tok_s == pytest.approx(8.0)
    assert m.ttft_s == pytest.approx(0.3)
    assert m.per_token_latency_s == pytest.approx([0.1, 0.1, 0.1, 0.2])
    assert m.mean_accepted == pytest.approx(2.0)
    assert m.acceptance_rate == pytest.approx(2 / 6)
    ar = summarize([hand_trace()[0], StepCommitted(1, [5], ["a"], 0.25, 0.25), RunFinished([5], "a", 0.25, "eos")])
    assert ar.mean_accepted is None and ar.acceptance_rate is None
    assert speedup(m, ar) == pytest.approx(8.0 / 4.0)


def test_time_spent_by_the_consumer_is_not_charged_to_the_method(tiny):
    import time

    from core.trace import RunFinished

    events = []
    for ev in METHODS["ar"].run(tiny, "Hi", GenerationConfig(4)):
        events.append(ev)
        time.sleep(0.2)  # a slow page rendering each event
    assert events[-1].wall_s < 0.4  # 5 pauses of 0.2 s would make it > 1 s
    assert isinstance(events[-1], RunFinished) and events[-1].t == events[-1].wall_s
