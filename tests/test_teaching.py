"""Issue 14's core pieces: the race timeline, the cost model, equal-length speedups, skeleton answers that
continue their point, readable tables, the pyvis explorers and where step sliders open."""

import json
import math
import re

import pytest

from components.blockwise import most_accepted
from components.explorer import dag_html, tree_html
from components.pipeline import first_flush, timeline_figure
from components.race import race_html, race_summary
from components.tables import cell, readable
from components.tree import explain_step, most_informative
from core.bench import run_bench
from core.config import GenerationConfig, SamplingConfig
from core.cost_model import (
    PipelineCost,
    TreeCost,
    break_even_acceptance,
    break_even_cost,
    equivalent_uniform,
    explain,
    predicted_speedup,
    uniform,
)
from core.metrics import equal_length_speedup, summarize, time_to
from core.prompts import load_prompts
from core.registry import get_method
from core.replay import finish_order, lane, race_end, race_lanes
from core.skeleton import join_points, parse_skeleton
from core.skeleton.format import plain_title, point_opening
from core.engine.rows import new_item
from core.text import encode_prompt
from core.trace import PipelineTick, RunFinished, RunStarted, StepCommitted, TreeStep

G0 = GenerationConfig(max_new_tokens=12, sampling=SamplingConfig(0.0))


def trace(method: str, steps: list[tuple[float, list[int], list[str]]], wall: float) -> list:
    events = [RunStarted(method, "m", "cpu", "float32", "q", [1], {"temperature": 0.0})]
    for i, (t, ids, texts) in enumerate(steps, 1):
        events.append(StepCommitted(i, ids, texts, t, 0.1, forwards=1))
    ids = [x for _, step_ids, _ in steps for x in step_ids]
    events.append(RunFinished(ids, "".join(x for _, _, texts in steps for x in texts), wall, "eos", wall))
    return events


AR = trace("ar", [(0.1, [1], ["a"]), (0.2, [2], ["b"]), (0.3, [3], ["c"]), (0.4, [4], ["d"])], 0.4)
FAST = trace("spec", [(0.12, [1, 2], ["a", "b"]), (0.22, [3, 4], ["c", "d"])], 0.25)


# --- the race -----------------------------------------------------------------------------------------------


def test_a_lane_knows_what_its_run_had_committed_at_any_time():
    x = lane("spec", FAST)
    assert [x.tokens_at(t) for t in (0.0, 0.11, 0.12, 0.2, 0.3)] == [0, 0, 2, 2, 4]
    assert x.text_at(0.15) == "ab" and x.text_at(1.0) == "abcd"
    assert x.committed(0.22) == 2  # a step committed at t counts at t


def test_the_race_spans_the_slowest_run_and_orders_finishers():
    lanes = race_lanes({"ar": AR, "spec": FAST, "empty": trace("hf", [], 0.05)})
    assert [x.name for x in lanes] == ["ar", "spec"]  # a run that committed nothing has no lane
    assert race_end(lanes) == pytest.approx(0.4)
    assert finish_order(lanes) == [("spec", 0.22, 4), ("ar", 0.4, 4)]
    assert race_summary({"ar": AR, "spec": FAST}) == "spec: 4 tokens by 0.22 s; ar: 4 tokens by 0.40 s."


def test_the_race_page_carries_each_runs_measured_clock_and_escapes_text():
    evil = trace("x", [(0.1, [1], ["</script><b>"])], 0.1)
    page = race_html({"ar": AR, "spec": FAST, "evil": evil})
    data = json.loads(re.search(r"const D = (\{.*?\});\n", page).group(1).replace("<\\/", "</"))
    assert [x["name"] for x in data["lanes"]] == ["ar", "spec", "evil"]
    assert data["lanes"][1]["times"] == [0.12, 0.22] and data["lanes"][1]["sizes"] == [2, 2]
    assert data["end"] == pytest.approx(0.4) and data["top"] == 4
    assert "</script><b>" not in page  # a token cannot close the page's script
    assert race_html({"none": trace("hf", [], 0.1)}) is None


# --- the cost model -----------------------------------------------------------------------------------------


def test_tree_cost_model_matches_the_formula_and_its_break_even_points():
    cm = TreeCost(acceptance=[0.5, 0.5], cost=0.1, draft_forwards=2, nodes=5, verify=1.2)
    assert cm.tokens_per_step(cm.acceptance) == pytest.approx(1.75)  # 1 + a1 + a1 a2
    assert predicted_speedup(cm) == pytest.approx(1.75 / 1.4)
    assert break_even_acceptance(cm) == pytest.approx((-1 + math.sqrt(1 + 4 * 0.4)) / 2, abs=1e-6)  # 1+a+a^2=1.4
    assert break_even_cost(cm) == pytest.approx((1.75 - 1.2) / 2, abs=1e-6)
    assert equivalent_uniform(cm) == pytest.approx(0.5, abs=1e-6)
    assert predicted_speedup(cm, uniform(cm, 0.0), 0.0) == pytest.approx(1 / 1.2)
    assert break_even_cost(TreeCost([0.1], 0.1, 1, 2, 1.5)) is None  # verification alone costs more than it gains
    assert break_even_acceptance(TreeCost([0.1], 2.0, 1, 2, 1.5)) is None  # even a = 1 loses at this draft cost


def test_pipeline_cost_model_refills_the_pipe_on_a_miss():
    cm = PipelineCost(acceptance=[0.5], cost=0.9, stages=2)
    assert cm.tokens_per_step([0.5]) == pytest.approx(1 / 1.5)  # h + (1 - h) S ticks per token
    assert cm.tokens_per_step([1.0]) == pytest.approx(1.0)
    assert break_even_acceptance(cm) == pytest.approx(2 - 1 / 0.9, abs=1e-6)
    assert break_even_acceptance(PipelineCost([0.5], 1.2, 2)) is None  # a tick dearer than an AR step never pays
    assert break_even_cost(cm) == pytest.approx(1 / 1.5, abs=1e-6)


def test_cost_model_of_a_real_run_uses_its_own_measurements(tiny):
    ar = list(get_method("ar").run(tiny, "Hello there", G0))
    spec = list(get_method("rrs").run(tiny, "Hello there", G0, k=2, depth=3, layer=1))
    ex = explain(spec, None, ar)
    m, a = summarize(spec), summarize(ar)
    trees = [e for e in spec if isinstance(e, TreeStep)]
    assert ex.measured_speedup == pytest.approx(m.decode_tok_s / a.decode_tok_s)  # the decode clock, as the page
    assert ex.measured_tokens_per_step == pytest.approx(m.tokens / len(trees))
    assert ex.model.nodes == pytest.approx(sum(len(t.tokens) for t in trees) / len(trees))
    assert ex.model.draft_forwards == pytest.approx(4)  # the self-draft forwards every level, the leaves too
    assert ex.unit_s == pytest.approx(1 / a.decode_tok_s)  # one AR step on the decode clock
    assert any("stands in" in note for note in ex.notes)  # no v(n) curve given: said so
    assert explain(ar, None, ar) is None  # AR drafts nothing


def test_cost_model_of_speed_counts_hits_over_the_guesses_tested():
    ticks = [
        PipelineTick(1, 0.0, 0.1, ["a", ""], [1, -1], [False, False], "", None, []),
        PipelineTick(2, 0.1, 0.2, ["b", "a"], [2, 1], [True, False], "a", True, []),
        PipelineTick(3, 0.2, 0.3, ["c", "b"], [3, 2], [True, False], "b", False, ["c"]),
    ]
    events = trace("speed", [(0.2, [1], ["a"]), (0.3, [2], ["b"])], 0.3)
    events[-1].extras["stages"] = 2
    ex = explain(events[:-1] + ticks + events[-1:], None, AR)
    assert ex.model.acceptance == [0.5] and ex.model.cost == pytest.approx(0.1 / 0.1)
    assert ex.measured_tokens_per_step == pytest.approx(2 / 3)
    assert first_flush(ticks) == 3


def test_bench_reports_the_cost_model_and_equal_length_speedups(tiny):
    prompts = [p for p in load_prompts() if p.category == "multipart"][:1]
    result = run_bench(tiny, prompts, ["ar", "rrs", "sot"], G0, options={"k": 2, "depth": 2, "layer": 1})
    rrs, sot = result["methods"]["rrs"], result["methods"]["sot"]
    cm = rrs["cost_model"]
    assert cm["measured_speedup"] == pytest.approx(rrs["decode_speedup_vs_ar"])
    assert cm["predicted_tokens_per_step"] >= 1.0 and cm["draft_forwards"] == pytest.approx(3)
    assert {"break_even_acceptance", "break_even_cost", "verify_cost", "nodes"} <= set(cm)
    assert result["methods"]["ar"]["cost_model"] is None and sot["cost_model"] is None
    ar_run = next(r for r in result["runs"] if r["method"] == "ar")
    sot_run = next(r for r in result["runs"] if r["method"] == "sot")
    ar_s = time_to(ar_run["token_times"], ar_run["wall_s"], len(sot_run["output_ids"]))[0]
    assert sot["equal_length_speedup_vs_ar"] == pytest.approx(ar_s / sot_run["wall_s"])


# --- equal-length speedups and skeleton answers -------------------------------------------------------------


def test_equal_length_speedup_measures_or_extrapolates_ars_time():
    ar = summarize(AR)  # 4 tokens, 0.1 s each
    long = summarize(trace("sot", [(0.2, [1, 2, 3, 4, 5, 6, 7, 8], list("abcdefgh"))], 0.2))
    short = summarize(trace("sot", [(0.1, [1, 2], ["a", "b"])], 0.1))
    assert equal_length_speedup(long, ar) == (pytest.approx(0.8 / 0.2), True)  # AR stopped at 4: extrapolated
    assert equal_length_speedup(short, ar) == (pytest.approx(0.2 / 0.1), False)  # AR's own time to 2 tokens


def test_skeleton_titles_are_plain_words_and_each_point_continues_its_opening():
    sk = parse_skeleton("1. **Renting**\n2. __Diversion__: costs\n3. `Code` tips\n4. ### Heading", graph=False)
    assert [p.title for p in sk.points] == ["Renting", "Diversion", "Code tips", "Heading"]
    assert plain_title("**Costs** - ") == "Costs"
    assert join_points(["Costs", "Risks"], [" low.", "\nMany.\n"]) == "1. Costs: low.\n2. Risks:\nMany."


def test_point_expansion_prompts_end_with_the_points_number_and_title(tiny):
    ids = encode_prompt(tiny, "Why?", 4, answer_prefix=point_opening(2, "Costs"))
    opening = tiny.tokenizer("2. Costs:", add_special_tokens=False)["input_ids"]
    assert ids[-len(opening) :] == opening and ids[: -len(opening)] == encode_prompt(tiny, "Why?", 4)


def test_sot_answers_open_each_point_with_its_title(tiny):
    events = list(get_method("sot").run(tiny, "Compare tea and coffee.", G0, skeleton="1. Taste\n2. Price"))
    text = summarize(events).text
    assert text.startswith("1. Taste:") and "\n2. Price:" in text


def test_a_point_ends_where_the_next_numbered_item_would_start(tiny):
    tok = tiny.tokenizer

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    dot = ids(".")[-1]
    assert new_item(tok, ids("low costs\n3"), dot)  # "\n3.": the next point's number
    assert new_item(tok, ids("Cost of renting: 2"), dot)  # "...: 2.": the next point, on the same line
    assert not new_item(tok, ids("moved in 2019"), dot)  # a year ends a sentence
    assert not new_item(tok, ids("low costs\n3"), ids("x")[-1])


# --- readable views -----------------------------------------------------------------------------------------


def test_tables_show_dashes_and_words_not_none_and_raw_names():
    import pandas as pd

    shown = readable(pd.DataFrame([{"tok_s": 12.345, "identical_to_ar": True, "mean_accepted": None}]))
    assert list(shown.columns) == ["tokens/s", "identical to AR", "mean accepted length"]
    assert list(shown.iloc[0]) == ["12.35", "yes", "–"]
    assert cell(float("nan")) == "–" and cell(3) == "3" and cell(0.0001) == "< 0.01"  # never 1.00e-04


def tree_step(step: int, path: list[int], status: list[str]) -> TreeStep:
    return TreeStep(
        step, "rrs", [1, 2, 3], ["a", "b", "c"], [-1, 0, 1], [0, 1, 2], status,
        [1.0, 0.5, 0.2], [1.0, 0.4, 0.3], path, 9, "z", "bonus",
    )  # fmt: skip


def test_step_sliders_open_on_the_most_informative_step():
    trees = [tree_step(1, [0], ["root", "rejected", "unvisited"]), tree_step(2, [0, 1, 2], ["root"] + ["accepted"] * 2)]
    assert most_informative(trees) == 2
    assert most_informative(trees[:1]) == 1


def test_the_step_sentence_names_the_rule_in_force():
    step = tree_step(2, [0, 1], ["root", "accepted", "rejected"])
    assert "RRS (with replacement) rule, which at temperature 0 accepts" in explain_step(step, greedy=True)
    assert "residual" in explain_step(TreeStep(**{**vars(step), "final_kind": "resampled"}), greedy=False)


def test_speed_timeline_is_drawn_in_ticks_and_highlights_the_chosen_tick():
    ticks = [
        PipelineTick(t, 0.1 * t, 0.1 * t + 0.1, ["x", "y"], [t, t + 1], [False, True], "", None, []) for t in (1, 2)
    ]
    fig = timeline_figure(ticks, selected=2)
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert sorted(b for tr in bars for b in tr.base) == [0.55, 0.55, 1.55, 1.55]
    assert [w for tr in bars for w in tr.marker.line.width] == [0, 3, 0, 3]
    assert fig.layout.shapes[0].x0 == 1.5 and "tick" in fig.layout.xaxis.title.text


def test_bpd_slider_opens_on_the_step_that_accepted_most():
    class Block:
        def __init__(self, accepted):
            self.accepted = accepted

    assert most_accepted([Block(0), Block(2), Block(2)]) == 2


# --- explorers ----------------------------------------------------------------------------------------------


def test_tree_explorer_is_offline_and_carries_each_nodes_details():
    page = tree_html(tree_step(1, [0, 1], ["root", "accepted", "rejected"]))
    assert "cdn.jsdelivr" not in page and "cdnjs" not in page.split("<body>")[1]
    nodes = json.loads(re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", page, re.S).group(1))
    assert len(nodes) == 4  # three drafted nodes and the final token
    assert "p (target, under its parent) = 50%; q (draft) = 40%" in nodes[1]["detail"]
    assert "dl-detail" in page and 'network.on("click"' in page


def test_dag_explorer_shows_each_points_text_model_and_timing(tiny):
    events = list(
        get_method("sgd").run(
            tiny, "Plan a trip.", G0, skeleton="1. Budget | depends on: none\n2. Route | depends on: 1"
        )
    )
    page = dag_html(events)
    nodes = json.loads(re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", page, re.S).group(1))
    assert [n["level"] for n in nodes] == [0, 1]  # waves
    assert nodes[1]["detail"].startswith("point 2: Route\ndepends on: 1;") and "decoded from" in nodes[1]["detail"]
    edges = json.loads(re.search(r"edges = new vis\.DataSet\((\[.*?\])\);", page, re.S).group(1))
    assert [(e["from"], e["to"]) for e in edges] == [(0, 1)]
    assert dag_html(AR) is None
