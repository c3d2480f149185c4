"""Served models (issue 15): AR, SoT and SGD through an OpenAI-compatible server.

The CI target is a real server: `transformers serve --continuous-batching` on the embedded model's converted
folder (a local path; the hub is off), started on a free port. Failures a real server will not produce on
demand (a slow answer, a 500, a malformed stream, one point of a wave failing) come from a small local HTTP
server that answers like one."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.bench import main as bench_main
from core.bench import run_bench
from core.config import GenerationConfig, SamplingConfig
from core.metrics import summarize
from core.models.gguf import converted_gguf, embedded_gguf_path
from core.prompts import load_prompts
from core.served import Served, ServedError, check_models, served_ar, served_sgd, served_sot
from core.trace import NodeStep, Notice, RunFinished, RunStarted, SkeletonReady, dumps
from tests.test_browser import ARTIFACTS, free_port

G = GenerationConfig(max_new_tokens=48, sampling=SamplingConfig(0.0))
QUESTION = "Compare tea and coffee: taste, caffeine and price."


# --- a real server -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    folder = converted_gguf(embedded_gguf_path(), lambda fraction, message: None)
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "transformers-serve.log", "w")
    command = [str(Path(sys.executable).parent / "transformers"), "serve", "--continuous-batching"]
    command += ["--host", "127.0.0.1", "--port", str(port), str(folder)]
    hub = tmp_path_factory.mktemp("hub")  # its /v1/models scans a hub cache, which must exist (and is empty)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub)}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not start; see artifacts/transformers-serve.log")
        yield Served(url, (str(folder),), timeout_s=120)  # the server is pinned to the folder it was given
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


pytestmark = pytest.mark.slow


def test_served_ar_streams_one_request_into_trace_events(real_server, monkeypatch):
    monkeypatch.setenv("LAB_TEST_KEY", "sk-secret-123")
    served = Served(real_server.url, real_server.models, "LAB_TEST_KEY", 120)
    events = list(served_ar(served, "Name three rivers in Europe.", G))
    start, end = events[0], events[-1]
    assert isinstance(start, RunStarted) and start.config["endpoint"].endswith("/v1")
    assert start.config["served_models"] == list(real_server.models) and start.config["timing"] == "client-side"
    assert isinstance(end, RunFinished) and end.text.strip() and end.extras["served"]
    m = summarize(events)
    assert 0 < m.tokens <= G.max_new_tokens and m.ttft_s < m.wall_s and m.tok_s > 0
    assert "sk-secret-123" not in dumps(events)  # the key is sent, never recorded


def overlapping(events: list, a: int, b: int) -> bool:
    """Did nodes a and b receive text during overlapping spans of time?"""
    times = {n: [e.t for e in events if isinstance(e, NodeStep) and n in e.nodes] for n in (a, b)}
    return times[a][0] < times[b][-1] and times[b][0] < times[a][-1]


def multipart(i: int) -> str:
    return [p.prompt for p in load_prompts() if p.category == "multipart"][i]


def test_served_sot_sends_the_points_at_once_and_their_streams_overlap(real_server):
    events = list(served_sot(real_server, multipart(2), GenerationConfig(96)))  # the model lists 3+ points here
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert len(ready.titles) >= 2 and ready.waves == [list(range(len(ready.titles)))]
    assert overlapping(events, 0, 1)  # the wave's requests ran together (continuous batching)
    text = summarize(events).text
    assert text.startswith("1. " + ready.titles[0]) and f"\n2. {ready.titles[1]}" in text
    assert not [e for e in events if isinstance(e, Notice) and e.level == "warning" and "failed" in e.message]


def test_served_sgd_runs_waves_and_names_the_served_model_per_point(real_server):
    events = list(served_sgd(real_server, multipart(2), GenerationConfig(96)))
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert set(ready.models) == set(real_server.models) and sum(len(w) for w in ready.waves) == len(ready.titles)
    assert summarize(events).extras["failed_points"] == 0


def test_bench_runs_ar_sot_and_sgd_through_the_server_beside_local_ar(real_server, tmp_path):
    out = tmp_path / "served.json"
    prompts = [p for p in load_prompts() if p.category == "multipart"][:1]
    code = bench_main(
        ["--methods", "ar,ar@served,sgd@served", "--endpoint", real_server.url, "--served-model", real_server.model]
        + ["--category", "multipart", "--limit", "1", "--max-new-tokens", "32", "--json", str(out)]
    )
    assert code == 0 and prompts
    result = json.loads(out.read_text())
    served_ar_fig, sgd = result["methods"]["ar@served"], result["methods"]["sgd@served"]
    assert served_ar_fig["tok_s"] > 0 and served_ar_fig["ttft_s"] > 0 and served_ar_fig["identical_to_ar"] is None
    assert sgd["wall_speedup_vs_ar"] == pytest.approx(served_ar_fig["wall_s"] / sgd["wall_s"])  # against ar@served
    assert result["methods"]["ar"]["identical_to_ar"] == 1  # the local run is beside it
    assert result["config"]["endpoint"].endswith("/v1") and result["config"]["timing"] == "client-side"


def test_a_model_the_server_lacks_and_a_server_that_is_down_get_one_sentence(real_server, fake):
    with pytest.raises(ServedError, match=r"HTTP 4\d\d: Server is pinned to .*requested 'no-such-model'"):
        list(served_ar(Served(real_server.url, ("no-such-model",)), "Hi", G))
    with pytest.raises(ServedError, match="does not serve 'no-such-model'; it lists fine"):
        check_models(Served(fake, ("no-such-model",)))  # a server that lists its models is asked first
    down = Served(f"http://127.0.0.1:{free_port()}", ("m",), timeout_s=5)
    with pytest.raises(ServedError, match="could not be reached"):
        list(served_ar(down, "Hi", G))


# --- failures on demand: a local server that answers like one ---------------------------------------------


class Fake(BaseHTTPRequestHandler):
    """/v1/models lists "fine" and friends; a chat request's model name picks the behaviour."""

    seen: list = []

    def log_message(self, *args):
        pass

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        names = ("fine", "slow", "broken", "garbled", "flaky", "runaway", "prose")
        self._json(200, {"data": [{"id": m} for m in names]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Fake.seen.append((dict(self.headers), body))
        model, prompt = body["model"], body["messages"][0]["content"]
        if model == "slow":
            time.sleep(3)
            return  # the client has given up by now
        if model == "broken" or (model == "flaky" and "point 2 (" in prompt):
            return self._json(500, {"error": {"message": "CUDA out of memory"}})
        if "json_schema" in json.dumps(body.get("response_format", {})):
            return self._json(400, {"error": {"message": "response_format is not supported"}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if model == "garbled":
            self.wfile.write(b"data: {not json\n\n")
            return
        text = "1. Taste\n2. Caffeine\n3. Price" if "organizer" in prompt else "It differs a lot."
        text = "Taste matters, and so does the price." if model == "prose" and "organizer" in prompt else text
        text += (
            " 9. Then the model runs on to other points." if model == "runaway" and "organizer" not in prompt else ""
        )
        try:
            for word in text.split(" "):
                chunk = {"choices": [{"delta": {"content": word + " "}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a point it cut)
            pass


@pytest.fixture(scope="module")
def fake():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize(
    ("model", "timeout", "words"),
    [
        ("slow", 1, "did not answer a request for 'slow' within 1 s"),
        ("broken", 30, "HTTP 500: CUDA out of memory"),
        ("garbled", 30, "stream is not JSON events"),
    ],
)
def test_each_failure_ends_in_one_sentence(fake, model, timeout, words):
    with pytest.raises(ServedError, match=words):
        list(served_ar(Served(fake, (model,), timeout_s=timeout), "Hi", G))


def test_a_served_skeleton_without_numbered_points_is_one_wave_with_a_note(fake):
    events = list(served_sgd(Served(fake, ("prose",)), QUESTION, G))
    ready = next(e for e in events if isinstance(e, SkeletonReady))
    assert len(ready.titles) == 1 and ready.waves == [[0]]
    assert any(isinstance(e, Notice) and "no numbered points" in e.message for e in events)
    assert isinstance(events[-1], RunFinished)


def test_a_failed_point_is_named_and_the_other_points_are_kept(fake):
    events = list(served_sot(Served(fake, ("flaky",)), QUESTION, G))
    failures = [e.message for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert failures == ["Point 2 (Caffeine) failed: The server answered a request for 'flaky' with HTTP 500: "
                        "CUDA out of memory The other points are kept."]  # fmt: skip
    text = summarize(events).text
    assert "1. Taste: It differs a lot." in text and "3. Price: It differs a lot." in text
    assert summarize(events).extras["failed_points"] == 1
    assert any("free text" in e.message for e in events if isinstance(e, Notice))  # no JSON schema: free text


def test_a_served_point_ends_where_the_next_numbered_item_starts(fake):
    events = list(served_sot(Served(fake, ("runaway",)), QUESTION, G))
    text = summarize(events).text
    assert text.splitlines() == [
        "1. Taste: It differs a lot.",
        "2. Caffeine: It differs a lot.",
        "3. Price: It differs a lot.",
    ]
    stops = [body.get("stop") for _, body in Fake.seen]
    assert ["\n2.", " 2. "] in stops  # point 1's request stops at point 2's number


def test_the_key_comes_from_the_environment_and_urls_are_checked(fake, monkeypatch):
    monkeypatch.setenv("LAB_FAKE_KEY", "sk-abc")
    list(served_ar(Served(fake, ("fine",), "LAB_FAKE_KEY"), "Hi", G))
    assert Fake.seen[-1][0]["Authorization"] == "Bearer sk-abc"
    monkeypatch.delenv("LAB_FAKE_KEY")
    with pytest.raises(ServedError, match="LAB_FAKE_KEY that should hold the API key is not set"):
        list(served_ar(Served(fake, ("fine",), "LAB_FAKE_KEY"), "Hi", G))
    with pytest.raises(ServedError, match="must be an http"):
        Served("localhost:8000", ("m",))
    with pytest.raises(ServedError, match="Name the model"):
        Served(fake, ())


def test_bench_refuses_served_methods_without_an_endpoint(tmp_path, capsys):
    assert bench_main(["--methods", "ar@served", "--json", str(tmp_path / "x.json")]) == 2
    assert "needs --endpoint URL and --served-model NAME" in capsys.readouterr().err
    args = ["--methods", "bpd@served", "--endpoint", "http://x", "--served-model", "m"]
    assert bench_main([*args, "--json", str(tmp_path / "y.json")]) == 2
    assert "Only ar, sot, sgd run through a server" in capsys.readouterr().err


def test_bench_stops_before_timed_work_when_the_server_fails(fake, tiny):
    with pytest.raises(ServedError, match="HTTP 500"):  # the warm-up meets it; main() prints it and exits 2
        run_bench(tiny, load_prompts()[:2], ["ar", "ar@served"], G, options={"served": Served(fake, ("broken",))})


# --- the pages ------------------------------------------------------------------------------------------------


def served_page(url: str, model: str):
    from tests.test_app import app

    at = app(max_new=24)
    at.sidebar.text_input(key="served_url").set_value(url)
    at.sidebar.text_input(key="served_models").set_value(model)
    at.run()
    at.switch_page("views/skeleton_graph.py").run()
    at.button(key="sg_run").click().run()
    assert not at.exception, at.exception
    return at


def test_skeleton_page_runs_through_the_server_and_names_a_failed_point(fake):
    at = served_page(fake, "flaky")
    assert any("run through flaky" in i.value for i in at.info)
    assert any(w.value.startswith("Point 2 (Caffeine) failed: The server answered") for w in at.warning)
    assert [m.label for m in at.metric].count("speedup vs AR (wall-clock, equal length)") == 2  # sot and sgd
    assert any("1. Taste: It differs a lot." in m.value for m in at.markdown if "dl-answer" in m.value)


def test_skeleton_page_says_when_the_server_is_down():
    at = served_page(f"http://127.0.0.1:{free_port()}", "m")
    assert any("could not be reached" in w.value for w in at.warning)
