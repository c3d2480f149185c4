"""Recorded bench results (assets/bench/) and the environment every bench result carries."""

import json
import shutil
from datetime import datetime

import torch

from core.reports import REPORTS, environment, recorded_reports


def test_environment_says_where_a_result_was_measured():
    env = environment(torch.device("cpu"))
    assert env["device_name"] and env["torch"] == torch.__version__ and env["cpus"] >= 1
    assert datetime.strptime(env["date"], "%Y-%m-%d %H:%M UTC")


def test_the_shipped_results_load_with_their_machine():
    reports, problems = recorded_reports()
    assert not problems and len(reports) >= 2
    for report in reports:
        assert "ar" in report.result["methods"] and report.result["environment"]["device_name"]
        assert report.result["environment"]["torch"] in report.describe()


def test_files_that_are_not_results_get_one_sentence_each_and_the_rest_still_load(tmp_path):
    good = sorted(REPORTS.glob("*.json"))[0]
    shutil.copy(good, tmp_path / "good.json")
    result = json.loads(good.read_text())
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "no-env.json").write_text(json.dumps({k: v for k, v in result.items() if k != "environment"}))
    methods = {**result["methods"], "ar": {"tok_s": "fast"}}
    (tmp_path / "bad-method.json").write_text(json.dumps({**result, "methods": methods}))
    (tmp_path / "bad-runs.json").write_text(json.dumps({**result, "runs": [{"method": "ar"}]}))
    reports, problems = recorded_reports(tmp_path)
    assert [r.name for r in reports] == ["good"]
    assert len(problems) == 5 and all(p.startswith("The recorded result '") and p.endswith(".") for p in problems)
    assert any("'no-env.json' has no 'environment'" in p for p in problems)
    assert recorded_reports(tmp_path / "missing") == ([], [])
