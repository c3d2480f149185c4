"""Every page with every number it allows at its maximum: a message or a result, never a crash, and the
process's peak memory stays bounded (the settings that once grew a server to 20.9 GB are refused first)."""

import resource

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP

PEAK_GROWTH_BOUND_GB = 2.0


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def at_page(page: str, max_new: int = 8) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.switch_page("views/autoregressive.py").run()  # the start page has no sidebar
    at.sidebar.selectbox(key="model_choice").set_value("tiny-random-llama")
    at.sidebar.number_input(key="max_new_tokens").set_value(max_new)
    at.run()
    return at.switch_page(page).run()


def maximise(at: AppTest) -> AppTest:
    """Every number input of the page (not the sidebar) at its maximum."""
    for box in at.main.number_input:
        box.set_value(box.max)
    return at.run()


def shown(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [w.value for w in at.warning]


@pytest.mark.parametrize(
    "page, choices, button, expected",
    [
        ("views/draft_trees.py", {}, "dt_run", "over the limit of 512"),
        ("views/draft_trees.py", {"dt_k": 2}, "dt_compare", None),  # 511 nodes: the largest tree allowed runs
        ("views/blockwise.py", {"bw_method": "bpd-ngram"}, "bw_run", "over the limit of 4,096"),
        ("views/blockwise.py", {"bw_method": "bpd-neural"}, "bw_run", None),
        ("views/pipeline.py", {}, "sp_run", None),
        ("views/skeleton_graph.py", {}, "sg_run", None),
    ],
)
def test_the_largest_settings_a_page_allows_end_in_a_result_or_one_sentence(tiny, page, choices, button, expected):
    before = peak_gb()
    at = at_page(page)
    for key, value in choices.items():
        (at.selectbox(key=key) if isinstance(value, str) else at.number_input(key=key)).set_value(value)
        at.run()
    maximise(at)
    for key, value in choices.items():  # a choice the maximum overrode
        if not isinstance(value, str):
            at.number_input(key=key).set_value(value)
    at.button(key=button).click().run()
    assert not at.exception, at.exception
    if expected:
        assert any(expected in m for m in shown(at)), shown(at)
    else:
        assert not at.error and len(at.metric) > 0, shown(at)
    assert peak_gb() - before < PEAK_GROWTH_BOUND_GB


def test_the_largest_token_budget_is_refused_in_one_sentence(tiny):
    at = at_page("views/autoregressive.py", max_new=4096)
    at.button(key="ar_run").click().run()
    assert not at.exception
    assert any("context holds 2048" in m for m in shown(at))


def test_a_skeleton_point_budget_at_its_maximum_is_capped(tiny):
    at = at_page("views/skeleton_graph.py", max_new=12)
    at.number_input(key="sg_point_tokens").set_value(4096)
    at.button(key="sg_run").click().run()
    assert not at.exception
    assert any("Tokens per point capped" in m for m in shown(at))
