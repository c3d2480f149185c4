"""Every page renders; a run on the tiny model shows both answers; bad input gets a message."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "views").glob("*.py"))


def app(model="tiny-random-llama", max_new=6):
    """The app on the Autoregressive page (it opens on the start page, which has no sidebar)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("views/autoregressive.py").run()
    at.sidebar.selectbox(key="model_choice").set_value(model)
    at.sidebar.number_input(key="max_new_tokens").set_value(max_new)
    return at.run()


def table_with(at, column: str):
    """The first table on the page that has ``column`` (pages show several: cost inputs, rules, exact figures)."""
    return next(d.value for d in at.table if column in d.value.columns)


def messages(at):
    return [e.value for e in at.error] + [w.value for w in at.warning]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(page):
    at = app()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_autoregressive_page_runs_both_methods(tiny):
    at = app()
    at.button(key="ar_run").click().run()
    assert not at.exception and not messages(at)
    metrics = {m.label for m in at.metric}
    assert {"tokens/s", "first token", "tokens", "speedup vs AR"} <= metrics
    assert [m.value for m in at.metric if m.label == "tokens"] == ["6", "6"]
    answers = [m.value for m in at.markdown if "dl-strip" in m.value]  # each answer, coloured by step
    assert len(answers) == 2


def test_a_live_run_shows_its_warm_up_and_no_recorded_example(tiny):
    at = app()
    at.selectbox(key="ar-trace-example").set_value("hf-writing-01.json")  # chosen in the same rerun as Run
    at.button(key="ar_run").click().run()
    assert not at.exception and not messages(at)
    assert not [c.value for c in at.caption if "Showing the recorded example" in c.value]
    labels = [s.label for s in at.status]  # the warm-up's status stays on the page, finished
    assert len(labels) == 1 and labels[0].startswith("Warmed up ar and hf in"), labels
    at.run()  # a later rerun keeps the live run: the example chosen during it is not loaded then either
    assert [m.value for m in at.metric if m.label == "tokens"] == ["6", "6"]
    assert not [c.value for c in at.caption if "Showing the recorded example" in c.value]


def test_empty_prompt_gets_a_message_and_the_page_stays(tiny):
    at = app()
    at.text_area(key="ar_prompt").set_value("  ")
    at.button(key="ar_run").click().run()
    assert not at.exception
    assert any("prompt is empty" in m for m in messages(at))
    assert at.button(key="ar_run") is not None


def test_too_long_prompt_gets_a_message(tiny):
    at = app(max_new=8)
    at.text_area(key="ar_prompt").set_value("word " * 2100)
    at.button(key="ar_run").click().run()
    assert not at.exception
    assert any("context holds" in m for m in messages(at))


def test_unknown_model_id_is_reported_in_the_sidebar():
    at = app()
    at.sidebar.selectbox(key="model_choice").set_value("other (Hugging Face id, folder or .gguf path)").run()
    at.sidebar.text_input(key="model_other").set_value("./no/such/model").run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.sidebar.error)
    assert any("Choose a model" in i.value for i in at.info)


def test_draft_trees_page_runs_draws_trees_and_compares_rules(tiny):
    at = app(max_new=10)
    at.sidebar.slider(key="temperature").set_value(1.0).run()
    at.switch_page("views/draft_trees.py").run()
    at.number_input(key="dt_layer").set_value(2)
    at.button(key="dt_run").click().run()
    assert not at.exception
    assert any("No trained exit head" in w.value for w in at.warning)  # the tiny model has none: said, not hidden
    assert {"tokens/s", "speedup vs AR"} <= {m.label for m in at.metric}
    assert any("mean accepted length" in c.value for c in at.caption)
    assert any(m.value.startswith("Step ") for m in at.markdown)
    at.button(key="dt_compare").click().run()
    assert not at.exception
    table = table_with(at, "rule")
    assert list(table["rule"]) == ["RRS (with replacement)", "RRS without replacement", "SpecHub (k = 2)", "AR"]
    assert (table["mean accepted length"][:3].astype(float) >= 1.0).all()


def test_draft_trees_page_runs_the_eagle_dynamic_tree_and_exact_rule_figures(tiny, tmp_path, monkeypatch):
    """A (random) feature head for the tiny model: the page offers EAGLE first, draws dynamic trees, and at
    T > 0 the rule comparison shows each rule's exact acceptance on the same drafts."""
    import core.eagle.head as feature
    from core.eagle.head import FeatureHead, save_feature_head
    from core.heads.modules import HeadInfo

    monkeypatch.setattr(feature, "HEADS", tmp_path)
    info = HeadInfo("eagle", tiny.key, 1, 1, tiny.config.hidden_size)
    save_feature_head(FeatureHead(tiny.model), info, feature.feature_head_path(tiny.key))
    at = app(max_new=10)
    at.sidebar.slider(key="temperature").set_value(1.0).run()
    at.switch_page("views/draft_trees.py").run()
    assert at.selectbox(key="dt_source").value == "eagle" and at.selectbox(key="dt_shape").value == "dynamic"
    at.number_input(key="dt_max_nodes").set_value(8)
    assert at.number_input(key="dt_lookup").value == 8 and not [w for w in at.selectbox if w.key == "dt_rule"]
    at.number_input(key="dt_lookup").set_value(4)
    at.button(key="dt_run").click().run()
    assert not at.exception
    assert any(m.value.startswith("Step ") for m in at.markdown)
    assert any("v(n)" in e.label for e in at.expander)
    at.selectbox(key="dt_shape").set_value("full").run()
    at.button(key="dt_compare").click().run()
    assert not at.exception
    table = table_with(at, "accepted at depth 1")  # the chart's figures, each rule's own run
    assert (table["accepted at depth 1"][:3].astype(float).between(0, 1)).all()
    same = table_with(at, "mean")  # the exact figures, on the RRS run's drafts
    assert list(same["rule"]) == ["RRS (with replacement)", "RRS without replacement", "SpecHub (k = 2)"]
    assert "depth 1" in same.columns


def test_draft_trees_page_reports_bad_settings(tiny):
    at = app(max_new=6)
    at.switch_page("views/draft_trees.py").run()
    at.selectbox(key="dt_source").set_value("lookup")
    at.number_input(key="dt_k").set_value(2)
    at.button(key="dt_run").click().run()
    assert not at.exception
    assert any("set k = 1" in w.value for w in at.warning)


def test_pipeline_page_runs_and_shows_the_timeline(tiny):
    at = app(max_new=8)
    at.switch_page("views/pipeline.py").run()
    at.number_input(key="sp_layer").set_value(2)
    at.button(key="sp_run").click().run()
    assert not at.exception
    labels = {m.label for m in at.metric}
    assert {"hit rate", "flushes", "ticks", "speedup vs AR"} <= labels
    assert any("parameter-shared" in label for label in labels)
    assert any(m.value.startswith("Tick ") for m in at.markdown)


def test_trace_download_and_upload_round_trip_renders_like_the_live_run(tiny):
    from core.trace import dumps

    at = app(max_new=6)
    at.button(key="ar_run").click().run()
    live = at.session_state["ar_results"]["ar"]
    at.run()  # the rerun after a run draws the coloured token strip
    strip = [m.value for m in at.markdown if "data-key='ar-strip-ar'" in m.value]
    fresh = app(max_new=6)
    fresh.file_uploader(key="ar-trace-upload").set_value(("trace-ar.json", dumps(live).encode(), "application/json"))
    fresh.run()
    assert not fresh.exception
    assert [m.value for m in fresh.markdown if "data-key='ar-strip-ar'" in m.value] == strip
    assert [m.value for m in fresh.metric if m.label == "tokens"] == ["6"]


def test_uploading_something_else_gets_a_message(tiny):
    at = app()
    at.file_uploader(key="ar-trace-upload").set_value(("x.json", b"{not json", "application/json")).run()
    assert not at.exception and any("not JSON" in w.value for w in at.warning)


def test_compare_page_runs_methods_side_by_side_and_keeps_results(tiny):
    at = app(max_new=8)
    at.switch_page("views/compare.py").run()
    at.multiselect(key="cmp_methods").set_value(["hf", "pld"])
    at.button(key="cmp_run").click().run()
    assert not at.exception
    table = at.table[0].value
    assert list(table["method"]) == ["ar", "hf", "pld"]
    assert (table["identical to AR"] == "yes").all()  # greedy
    costs = table_with(at, "break-even acceptance")  # the cost model of each drafting method
    assert list(costs["method"]) == ["pld"] and float(costs["tokens per step, measured"][0]) >= 1.0
    assert any(e.label.startswith("Cost model") for e in at.expander)
    at.run()
    assert list(at.table[0].value["method"]) == ["ar", "hf", "pld"]  # still there after a rerun
    at.button(key="cmp_clear").click().run()
    assert not at.table


def test_benchmark_page_runs_the_bench_on_the_tiny_model(tiny):
    at = app(max_new=4)
    at.switch_page("views/benchmark.py").run()
    at.number_input(key="bn_limit").set_value(2)
    at.multiselect(key="bn_methods").set_value(["ar", "hf"])
    at.button(key="bn_run").click().run()
    assert not at.exception, at.exception
    result = at.session_state["bn_result"]
    assert result["methods"]["ar"]["prompts"] == 2 and result["methods"]["hf"]["identical_to_ar"] == 2
    assert list(at.table[0].value["method"]) == ["ar", "hf"]
    assert len(at.get("download_button")) == 2


def test_benchmark_page_shows_the_recorded_results_with_their_machine(tiny):
    at = app()
    at.switch_page("views/benchmark.py").run()
    assert not at.exception
    names = at.selectbox(key="bn_recorded").options
    assert len(names) >= 2
    at.selectbox(key="bn_recorded").set_value(names[-1]).run()
    assert not at.exception
    assert any("measured" in c.value and "torch" in c.value for c in at.caption)
    assert "ar" in list(at.table[0].value["method"])


def test_benchmark_page_rejects_a_bad_suite(tiny):
    at = app()
    at.switch_page("views/benchmark.py").run()
    at.radio(key="bn_source").set_value("upload JSONL").run()
    at.file_uploader(key="bn_upload").set_value(("s.jsonl", b'{"id": 1}\n', "application/json")).run()
    assert not at.exception and any("needs a non-empty string field 'prompt'" in w.value for w in at.warning)


def test_blockwise_page_runs_refined_bpd_beside_ar_and_draws_the_lattice(tiny):
    at = app(max_new=10)
    at.switch_page("views/blockwise.py").run()
    at.selectbox(key="bw_method").set_value("bpd-ngram").run()
    at.number_input(key="bw_paths").set_value(2)
    at.button(key="bw_run").click().run()
    assert not at.exception
    assert any("No trained BPD heads" in w.value for w in at.warning)  # the tiny model has none
    labels = {m.label for m in at.metric}
    assert {"block efficiency", "oracle block efficiency", "speedup vs AR", "tokens/s"} <= labels
    assert any("<sub" in m.value for m in at.markdown if "dl-strip" in m.value)  # base / head marks
    assert any(c.value.startswith("Step ") and "accepted along" in c.value for c in at.caption)  # most accepted


def test_skeleton_graph_page_runs_ar_sot_sgd_and_shows_the_dag_and_quality(tiny):
    at = app(max_new=12)
    at.switch_page("views/skeleton_graph.py").run()
    at.number_input(key="sg_layer").set_value(2)
    at.text_area(key="sg_skeleton").set_value(
        "1. Costs | depends on: none | difficulty: 1\n"
        "2. Risks | depends on: 1 | difficulty: 5\n"
        "3. Advice | depends on: 9"
    )
    at.button(key="sg_run").click().run()
    assert not at.exception
    assert any("does not exist" in w.value for w in at.warning)  # the repair is shown, not hidden
    labels = [m.label for m in at.metric]
    assert labels.count("wall-clock") == 3 and labels.count("speedup vs AR (wall-clock, equal length)") == 2
    table = at.table[0].value
    assert list(table["method"]) == ["ar", "sot", "sgd"] and list(table["waves"])[1:] == ["1", "2"]
    proxy = at.table[1].value
    assert "proxy: log-likelihood" in proxy.columns and len(proxy) == 3
    assert proxy["proxy: repeated 4-grams"].astype(float).between(0, 1).all()
    at.text_input(key="sg_judge_id").set_value("tiny-random-llama")
    at.button(key="sg_judge_run").click().run()
    assert not at.exception
    scores = at.table[2].value
    assert scores.iloc[:, 1].astype(float).between(1, 5).all()


def test_the_start_page_says_what_the_lab_is_and_links_every_method_page():
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    assert at.title[0].value == "Decoding Lab"
    assert at.button(key="start_play") is not None
    assert len(at.get("page_link")) == 8  # one line per page: Autoregressive ... How it works


@pytest.mark.slow
def test_the_start_pages_button_plays_the_compare_page():
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.session_state["cmp_autoplay"] = True  # what the button sets before it switches
    at.switch_page("views/compare.py")
    at.session_state["max_new_tokens"] = 6
    at.run()
    assert not at.exception and at.session_state["model_choice"] == "embedded"
    assert list(table_with(at, "method")["method"]) == ["ar", "hf", "pld", "rrs"]  # the page's default methods, run
