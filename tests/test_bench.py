"""The bench CLI writes the documented schema and refuses bad input with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.prompts import SUITE, load_prompts, parse_prompts
from core.quality import overlap_f1

ROOT = Path(__file__).resolve().parent.parent


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "core.bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_shipped_suite_has_enough_prompts_and_categories():
    prompts = load_prompts(SUITE)
    categories = {p.category for p in prompts}
    assert len(prompts) >= 48 and len(categories) >= 6
    assert {"multipart", "writing", "coding", "math", "extraction", "rewriting"} <= categories


def test_prompt_parsing_names_the_bad_line():
    with pytest.raises(ValueError, match="line 2: not JSON"):
        parse_prompts('{"id": 1, "prompt": "a"}\n{oops')
    with pytest.raises(ValueError, match="line 1: needs a non-empty string field 'prompt'"):
        parse_prompts('{"id": 1}')
    with pytest.raises(ValueError, match="used twice"):
        parse_prompts('{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}')


def test_bench_writes_the_schema(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}?", "category": "c"}) for i in range(2))
    )
    out = tmp_path / "out.json"
    res = bench(
        "--prompts",
        str(prompts),
        "--methods",
        "ar,hf",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--model",
        "tiny-random-llama",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "4/4" in res.stderr  # progress bar on stderr
    data = json.loads(out.read_text())
    assert data["model"] == "tiny random llama" and data["device"] == "cpu" and data["dtype"] == "float32"
    for name in ("ar", "hf"):
        rec = data["methods"][name]
        assert {
            "prompts",
            "tokens",
            "wall_s",
            "tok_s",
            "speedup_vs_ar",
            "mean_accepted",
            "acceptance_rate",
            "identical_to_ar",
        } <= rec.keys()
        assert rec["prompts"] == 2 and rec["tokens"] == 12 and rec["tok_s"] > 0
        assert rec["identical_to_ar"] == 2  # greedy: hf and ar agree token for token
        assert rec["mean_accepted"] is None and rec["acceptance_rate"] is None
    assert data["methods"]["ar"]["speedup_vs_ar"] == 1.0
    assert len(data["runs"]) == 4
    assert {"method", "id", "output_ids", "text", "tokens", "wall_s"} <= data["runs"][0].keys()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--methods", "ar,warp"], "Unknown method 'warp'"),
        (["--temperature", "-2"], "Temperature"),
        (["--prompts", "/no/such.jsonl"], "does not exist"),
        (["--model", "./missing-model"], "does not exist"),
    ],
)
def test_bench_rejects_bad_input_with_one_line(args, words, tmp_path):
    res = bench("--model", "tiny-random-llama", "--json", str(tmp_path / "o.json"), *args)
    assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr


def test_bench_tree_methods_take_options_and_report_acceptance_per_depth(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Tell me about rivers", "category": "c"}))
    out = tmp_path / "out.json"
    res = bench(
        "--prompts",
        str(prompts),
        "--methods",
        "ar,rrs,pld",
        "--max-new-tokens",
        "10",
        "--model",
        "tiny-random-llama",
        "--k",
        "2",
        "--depth",
        "2",
        "--layer",
        "2",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    rrs = data["methods"]["rrs"]
    assert rrs["identical_to_ar"] == 1  # temperature 0
    assert rrs["mean_accepted"] >= 1.0 and len(rrs["acceptance_per_depth"]) == 2
    assert data["methods"]["ar"]["acceptance_per_depth"] is None
    assert data["config"]["k"] == 2 and data["config"]["depth"] == 2
    run = next(r for r in data["runs"] if r["method"] == "rrs")
    assert len(run["depth_reached"]) == 2


def test_bench_records_bpd_and_skeleton_figures_on_held_out_prompts(tmp_path):
    out = tmp_path / "out.json"
    res = bench(
        "--methods",
        "ar,bpd-ngram,sot,sgd",
        "--split",
        "held-out",
        "--limit",
        "1",
        "--max-new-tokens",
        "12",
        "--model",
        "tiny-random-llama",
        "--layer",
        "2",
        "--paths",
        "2",
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["runs"][0]["id"] == load_prompts()[4].id  # the first held-out prompt
    assert data["environment"]["device_name"] and data["environment"]["date"]
    bpd, sgd = data["methods"]["bpd-ngram"], data["methods"]["sgd"]
    assert bpd["oracle_block_efficiency"] >= bpd["mean_accepted"] >= 1 and bpd["identical_to_ar"] == 1
    for name in ("sot", "sgd"):
        rec = data["methods"][name]
        assert rec["nodes"] >= 1 and rec["waves"] >= 1 and rec["mean_nodes_per_wave"] == rec["nodes"] / rec["waves"]
        assert rec["wall_speedup_vs_ar"] > 0 and rec["speedup_vs_ar"] > 0
    assert sgd["skeleton_s"] > 0
    # quality proxies for the methods whose answers differ from AR's, and for AR beside them
    assert bpd["proxy_loglik"] is None  # lossless: its answer is AR's
    texts = {r["method"]: r["text"] for r in data["runs"]}
    for name in ("ar", "sot", "sgd"):
        rec = data["methods"][name]
        assert rec["proxy_loglik"] < 0
        assert rec["proxy_overlap_with_ar"] == overlap_f1(texts[name], texts["ar"])
        assert 0 <= rec["proxy_repetition"] < 1
    bad = bench("--methods", "ar", "--split", "nonsense", "--json", str(out))
    assert bad.returncode == 2


def test_verify_cost_curve_is_measured_relative_to_one_token(tiny):
    from core.engine.cost import verify_cost_curve

    curve = verify_cost_curve(tiny, sizes=(2, 4), context=8, repeats=2)
    assert curve["n"] == [1, 2, 4] and curve["relative"][0] == 1.0
    assert all(s > 0 for s in curve["seconds"]) and curve["device"] == "cpu"
    with pytest.raises(ValueError, match="at least 1"):
        verify_cost_curve(tiny, sizes=(0,))


def test_bench_cli_writes_the_verify_curve_alone(tmp_path):
    out = tmp_path / "curve.json"
    res = bench("--methods", "", "--verify-curve", "--model", "tiny-random-llama", "--limit", "1", "--json", str(out))
    assert res.returncode == 0, res.stderr
    curve = json.loads(out.read_text())["verify_curve"]
    assert curve["n"] == list(range(1, 65)) and curve["relative"][0] == 1.0
    assert "verify cost: v(1)=1.00" in res.stderr
