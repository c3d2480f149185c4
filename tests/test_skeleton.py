"""SoT and SGD: batched rows equal single rows, skeletons always parse, repairs are said, waves follow the DAG."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from core.config import GenerationConfig, SamplingConfig
from core.metrics import summarize
from core.prompts import load_prompts
from core.registry import METHODS
from core.served.methods import expansion_prompt
from core.skeleton.decode import answer_opening
from core.skeleton.format import LINE, MAX_POINTS, parse_skeleton, skeleton_graph, waves
from core.skeleton.pool import PoolMember, member_index, wave_members
from core.quality import (
    JudgeError,
    answer_loglik,
    judge_with_endpoint,
    judge_with_model,
    overlap_f1,
    proxy_scores,
    repetition,
)
from core.engine.rows import MIN_ITEM_TOKENS, decode_rows, item_enders, no_early_end
from core.skeleton.writer import write_skeleton
from core.text import encode_prompt
from core.trace import NodeStep, Notice, SkeletonReady, dumps, loads

GRAPH = """1. Define renting | depends on: none | difficulty: 1
2. Define buying | depends on: none | difficulty: 2
3. Compare costs | depends on: 1, 2 | difficulty: 4
4. Advice | depends on: 3 | difficulty: 5"""
EASY_FIRST = GRAPH.replace("buying | depends on: none | difficulty: 2", "buying | depends on: none | difficulty: 1")


def run(model, name, prompt, gen, **options):
    return list(METHODS[name].run(model, prompt, gen, **options))


def greedy_alone(model, ids, n):
    member = PoolMember("m", model)
    return [s[0].token for s in decode_rows(member, [ids], [n], SamplingConfig(0.0), torch.Generator())]


@pytest.mark.parametrize("fixture", ["tiny", "embedded"])
def test_batched_rows_equal_each_row_decoded_alone(fixture, request):
    model = request.getfixturevalue(fixture)
    prompts = [encode_prompt(model, q, 8) for q in ["Hi", "Name three colours of the rainbow please", "Why?"]]
    budgets = [8, 5, 8]
    rows: dict[int, list[int]] = {0: [], 1: [], 2: []}
    steps = list(decode_rows(PoolMember("m", model), prompts, budgets, SamplingConfig(0.0), torch.Generator()))
    for step in steps:
        for t in step:
            rows[t.row].append(t.token)
    assert len(steps) <= max(budgets)  # one batched forward per step, not one per row
    assert [len(s) for s in steps][-1] <= 2  # the 5-token row left the batch
    for r, ids in enumerate(prompts):
        alone = greedy_alone(model, ids, budgets[r])
        assert rows[r] == alone[: len(rows[r])] and (len(rows[r]) == budgets[r] or rows[r][-1] in model.eos_ids)


def test_a_point_expansion_writes_a_few_tokens_before_it_may_end(tiny):
    """A one-item row may not end (EOS) or begin the next item (a number) in its first MIN_ITEM_TOKENS
    tokens, so no point comes back empty; a line break stays allowed (198 is one)."""
    enders = item_enders(tiny, tiny.model.lm_head.out_features)
    digit = tiny.tokenizer("7", add_special_tokens=False)["input_ids"][0]
    assert bool(enders[digit]) and bool(enders[tiny.eos_ids[0]]) and not bool(enders[198])
    logits = torch.zeros(2, enders.shape[0])
    logits[:, digit] = 5.0  # both rows would write the next number at once
    masked = no_early_end(logits, [MIN_ITEM_TOKENS - 1, MIN_ITEM_TOKENS], enders)
    assert int(masked[0].argmax()) != digit and int(masked[1].argmax()) == digit  # only the young row is held
    ids = encode_prompt(tiny, "1. Cost:", 8)
    rows = decode_rows(PoolMember("m", tiny), [ids, ids], [8, 8], SamplingConfig(0.0), torch.Generator(), one_item=True)
    first = [[t.token for t in step] for step in rows][:MIN_ITEM_TOKENS]
    assert len(first) == MIN_ITEM_TOKENS and not any(bool(enders[tok]) for step in first for tok in step)


def test_a_clean_graph_skeleton_parses_into_waves():
    sk = parse_skeleton(GRAPH, graph=True)
    assert not sk.warnings
    assert [p.depends for p in sk.points] == [[], [], [0, 1], [2]]
    assert [p.difficulty for p in sk.points] == [1, 2, 4, 5]
    assert waves(skeleton_graph(sk)) == [[0, 1], [2], [3]]


@pytest.mark.parametrize(
    "text, warning",
    [
        ("1. A | depends on: 2 | difficulty: 1\n2. B | depends on: none | difficulty: 1", "a later point"),
        ("1. A | depends on: 1 | difficulty: 1", "itself"),
        ("1. A | depends on: none | difficulty: 9", "clamped"),
        ("1. A | depends on: none", "no difficulty"),
        ("1. A\n2. B | difficulty: 2", "does not say what it depends on"),
        ("2. A | depends on: none | difficulty: 1\n5. B | depends on: 2 | difficulty: 1", "renumbered"),
        ("Here is my plan:\n1. A | depends on: none | difficulty: 1", "not a numbered point"),
        ("1. A | depends on: 7 | difficulty: 3", "does not exist"),
        ("| 1. Structure: open well\n| 2. Slides |", "table or list marker"),
    ],
)
def test_invalid_skeletons_are_repaired_with_a_warning(text, warning):
    sk = parse_skeleton(text, graph=True)
    assert any(warning in w for w in sk.warnings), sk.warnings
    g = skeleton_graph(sk)
    assert all(j < i for j, i in g.edges) and all(1 <= p.difficulty <= 5 for p in sk.points)


def test_points_written_as_table_rows_keep_their_titles():
    sk = parse_skeleton("The skeleton is:\n\n| 1. Structure: 1. Open well.\n| 2. Slides |\n|---|", graph=False)
    assert [p.title for p in sk.points] == ["Structure", "Slides"]


def test_renumbered_points_keep_their_dependencies():
    sk = parse_skeleton("2. A | depends on: none | difficulty: 1\n5. B | depends on: 2 | difficulty: 1", graph=True)
    assert sk.points[1].depends == [0]


def test_too_many_points_are_cut_and_no_points_is_an_error():
    sk = parse_skeleton("\n".join(f"{i}. point {i}" for i in range(1, 14)), graph=False)
    assert len(sk.points) == MAX_POINTS and any("only the first" in w for w in sk.warnings)
    with pytest.raises(ValueError, match="no numbered points"):
        parse_skeleton("just some prose without a list", graph=False)


@pytest.mark.parametrize("graph", [False, True])
def test_the_constrained_skeleton_always_parses_on_the_tiny_model(tiny, graph):
    sk, forwards = write_skeleton(tiny, "Compare cats and dogs as pets.", graph)
    assert 1 <= len(sk.points) <= MAX_POINTS and forwards > 0
    lines = [ln for ln in sk.text.splitlines() if ln.strip()]
    assert all(LINE.match(ln) for ln in lines)
    assert not [w for w in sk.warnings if "repeated" not in w]  # nothing needed repairing
    if graph:
        assert all(" | depends on:" in ln and " | difficulty:" in ln for ln in lines)


@pytest.mark.slow
def test_the_embedded_model_writes_a_parsing_graph_skeleton(embedded):
    for p in [p for p in load_prompts() if p.category == "multipart"][:2]:
        sk, _ = write_skeleton(embedded, p.prompt, graph=True)
        assert len(sk.points) >= 2 and not [w for w in sk.warnings if "repeated" not in w], sk.text
        skeleton_graph(sk)


def test_a_wave_runs_on_the_most_capable_member_its_points_were_given(tiny):
    assert wave_members([[0, 1], [2], [3]], [0, 1, 1, 0]) == [1, 1, 1, 0]  # point 1 moves up; a lone easy point not
    assert wave_members([[0, 1, 2]], [0, 2, 1]) == [2, 2, 2]
    events = run(tiny, "sgd", "Rent or buy?", GenerationConfig(24), skeleton=GRAPH, layer=2, point_tokens=6)
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert ready.difficulty[0] == 1 and set(ready.models) == {"tiny-random-llama (full)"}
    assert {s.model for s in events if isinstance(s, NodeStep)} == {"tiny-random-llama (full)"}


def test_difficulty_picks_the_pool_member():
    assert [member_index(d, 2) for d in range(1, 6)] == [0, 1, 1, 1, 1]
    assert [member_index(d, 1) for d in range(1, 6)] == [0] * 5
    assert [member_index(d, 3) for d in range(1, 6)] == [0, 1, 1, 2, 2]


def test_a_dependent_point_continues_its_parents_finished_points():
    sk = parse_skeleton(GRAPH, graph=True)
    answers = {0: " Renting is paying.", 1: " Buying is owning."}
    assert answer_opening(sk, 2, answers) == (
        f"1. {sk.points[0].title}: Renting is paying.\n2. {sk.points[1].title}: Buying is owning.\n3. Compare costs:"
    )
    assert answer_opening(sk, 0, answers) == f"1. {sk.points[0].title}:"


def test_a_served_dependent_point_is_told_its_parents_answers():
    sk = parse_skeleton(GRAPH, graph=True)
    prompt = expansion_prompt("Rent or buy?", sk, 2, {0: "Renting is paying.", 1: "Buying is owning."})
    assert "Renting is paying." in prompt and "Buying is owning." in prompt and "point 3 (Compare costs)" in prompt
    assert "already written" not in expansion_prompt("Rent or buy?", sk, 0, {})


def test_sgd_decodes_waves_in_order_with_the_members_difficulty_picks(tiny):
    events = run(tiny, "sgd", "Rent or buy?", GenerationConfig(24), skeleton=EASY_FIRST, layer=2, point_tokens=6)
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert ready.waves == [[0, 1], [2], [3]] and ready.depends == [[], [], [0, 1], [2]]
    assert "exit head" in ready.models[0] == ready.models[1]  # a wave of easy points: the cheap member
    assert ready.models[2] == ready.models[3] == "tiny-random-llama (full)"
    steps = [e for e in events if isinstance(e, NodeStep)]
    assert [s.wave for s in steps] == sorted(s.wave for s in steps)  # a wave starts after the last one ended
    assert {n for s in steps if s.wave == 0 for n in s.nodes} == {0, 1}
    assert {s.model for s in steps if s.wave == 0} == {ready.models[0]}  # one batch
    m = summarize(events)
    assert m.extras["nodes"] == 4 and m.extras["waves"] == 3 and m.extras["mean_nodes_per_wave"] == pytest.approx(4 / 3)
    assert m.text.index("1. Define renting") < m.text.index("4. Advice")
    assert 0 < m.tokens <= 4 * 6
    assert loads(dumps(events)) == events


def test_a_pool_of_the_full_model_alone_and_a_pool_of_given_models(tiny):
    events = run(tiny, "sgd", "Q", GenerationConfig(12), skeleton=GRAPH, layer=0, point_tokens=3)
    assert set(next(e for e in events if isinstance(e, SkeletonReady)).models) == {"tiny-random-llama (full)"}
    events = run(tiny, "sgd", "Q", GenerationConfig(12), skeleton=EASY_FIRST, pool_models=[tiny], point_tokens=3)
    models = next(e for e in events if isinstance(e, SkeletonReady)).models
    assert models == [
        "tiny-random-llama",
        "tiny-random-llama",
        "tiny-random-llama (full)",
        "tiny-random-llama (full)",
    ]


def test_sot_expands_every_point_in_one_batch(tiny):
    events = run(tiny, "sot", "Rent or buy?", GenerationConfig(24), skeleton="1. A\n2. B\n3. C", point_tokens=5)
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert ready.waves == [[0, 1, 2]] and set(ready.models) == {"tiny-random-llama (full)"}
    first = next(e for e in events if isinstance(e, NodeStep))
    assert first.nodes == [0, 1, 2]


def test_a_bad_user_skeleton_falls_back_to_one_wave_with_a_note(tiny):
    events = run(tiny, "sgd", "Rent or buy?", GenerationConfig(8), skeleton="no list here\nnor here", layer=2)
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert ready.titles == ["no list here", "nor here"] and ready.waves == [[0, 1]]
    assert any(isinstance(e, Notice) and "no numbered points" in e.message and "one wave" in e.message for e in events)
    events = run(tiny, "sgd", "Q", GenerationConfig(8), skeleton="1. A | depends on: 3 | difficulty: 2", layer=2)
    assert any(isinstance(e, Notice) and "does not exist" in e.message for e in events)
    cyclic = "1. A | depends on: 2 | difficulty: 2\n2. B | depends on: 1 | difficulty: 2"
    events = run(tiny, "sgd", "Q", GenerationConfig(8), skeleton=cyclic, layer=2)
    assert next(e for e in events if isinstance(e, SkeletonReady)).waves == [[0], [1]]  # the back edge is dropped
    assert any(isinstance(e, Notice) and "could close a cycle" in e.message for e in events)


def test_overlap_and_loglik_proxies(tiny):
    assert overlap_f1("the cat sat", "the cat sat") == 1.0 and overlap_f1("a b", "c d") == 0.0
    assert overlap_f1("the cat", "the dog") == pytest.approx(0.5)
    own = summarize(run(tiny, "ar", "Tell me a story", GenerationConfig(12))).text
    assert answer_loglik(tiny, "Tell me a story", own) > answer_loglik(tiny, "Tell me a story", "zebra quantum ок 42")


def test_repetition_counts_n_grams_already_written():
    assert repetition([1, 2, 3, 4, 5, 6]) == 0.0 and repetition([1, 2, 3]) == 0.0
    assert repetition([1, 2, 3, 4] * 5) == pytest.approx(1 - 4 / 17)  # 17 4-grams, 4 distinct
    assert repetition([7, 7, 7, 7, 7], n=2) == pytest.approx(3 / 4)


def test_proxy_scores_give_every_answer_its_repetition(tiny):
    loop, varied = "the cat sat on the mat " * 6, "A short answer with words that never come back again."
    scores = proxy_scores(tiny, "Tell me a story", {"ar": loop, "sot": varied})
    assert scores["ar"]["repetition"] > 0.5 and scores["sot"]["repetition"] == 0.0
    assert scores["sot"]["overlap_with_ar"] == overlap_f1(varied, loop)


def test_local_judge_gives_a_score_between_1_and_5(tiny):
    assert 1.0 <= judge_with_model(tiny, "What is 2+2?", "4") <= 5.0


def test_endpoint_judge_reads_an_openai_style_reply_and_reports_failures():
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = json.dumps({"choices": [{"message": {"content": "Score: 4"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        assert judge_with_endpoint(url, "Q?", "A.", model="judge") == 4.0
        assert seen["path"] == "/v1/chat/completions" and seen["body"]["model"] == "judge"
        assert "Q?" in seen["body"]["messages"][0]["content"]
    finally:
        server.shutdown()
        server.server_close()  # nothing listens there now: refused, not silent
    with pytest.raises(JudgeError, match="could not be reached"):
        judge_with_endpoint(f"http://127.0.0.1:{server.server_port}/v1", "Q", "A", timeout=2)
    with pytest.raises(JudgeError, match="http"):
        judge_with_endpoint("ftp://example", "Q", "A")
