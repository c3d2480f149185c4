"""A real browser: `streamlit run app.py`, Debian's chromium driven by Playwright.

Runs a prompt on the embedded model and checks the streamed answer appears; the
screenshot is kept under artifacts/ as a test artifact.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("DECODING_LAB_APP_ROOT", HERE))  # the checkout whose app is served (default: this one)
ARTIFACTS = HERE / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make browser)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(log_name: str = "streamlit.log") -> tuple[str, subprocess.Popen, object]:
    """The app of ``ROOT`` served on a free port, once it answers: (url, process, its log file)."""
    port = free_port()
    log = open(ARTIFACTS.mkdir(exist_ok=True) or ARTIFACTS / log_name, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return url, proc, log
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    pytest.fail(f"streamlit did not start; see artifacts/{log_name}")


@pytest.fixture(scope="module")
def server():
    url, proc, log = start_app()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_prompt_streams_an_answer_on_the_embedded_model(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{server}/autoregressive")
    prompt = page.get_by_label("Prompt")
    prompt.wait_for(timeout=120_000)
    prompt.fill("What is the capital of France?")
    prompt.press("Control+Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Run").click()
    # the run is timed with the page quiet; then its recorded events replay: the answer streams, the text grows
    answer = page.locator(".dl-answer").first
    answer.wait_for(timeout=120_000)
    page.wait_for_function(
        "document.querySelector('.dl-answer') && document.querySelector('.dl-answer').innerText.trim().length > 3",
        timeout=120_000,
    )
    page.get_by_text("speedup vs AR").wait_for(timeout=240_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "browser-autoregressive.png"), full_page=True)
    text = page.locator(".dl-strip").first.inner_text()  # at the end the answer is the per-step token strip
    assert "Paris" in text
    assert page.locator("[data-testid='stException']").count() == 0


def test_skeleton_graph_runs_ar_sot_and_sgd_on_the_embedded_model(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{server}/skeleton_graph")
    # the page opens on a recorded SGD trace, whose timeline and proxy are already drawn: wait for
    # what only the live run makes, the speedup of SoT and of SGD over the AR run beside them
    page.get_by_text("Showing the recorded example").wait_for(timeout=120_000)
    page.get_by_role("button", name="Run AR, SoT and SGD").click(timeout=120_000)
    page.get_by_text("speedup vs AR (wall-clock, equal length)").nth(1).wait_for(timeout=500_000)
    page.get_by_text("Proxy, not a judgement").wait_for(timeout=120_000)
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=120_000,
    )
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "browser-skeleton-graph.png"), full_page=True)
    assert page.get_by_text("speedup vs AR (wall-clock, equal length)").count() == 2
    assert page.locator(".js-plotly-plot").count() >= 2  # the DAG and the timeline
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


PAGES = {
    "draft_trees": "Draft trees",
    "blockwise": "Blockwise parallel decoding",
    "pipeline": "SPEED pipeline",
    "skeleton_graph": "Skeleton graph",
    "compare": "Compare methods",
    "benchmark": "Benchmark",
    "how_it_works": "How it works",
    "autoregressive": "Autoregressive decoding",
    "": "Decoding Lab",
}


@pytest.mark.parametrize("path, title", PAGES.items())
def test_every_page_opens_without_an_error_box(server, browser, path, title):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    # the script has finished (no running indicator) and the lazily loaded widgets are drawn (no skeletons)
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "!document.querySelector('[data-testid=\"stSkeleton\"]')",
        timeout=120_000,
    )
    page.wait_for_timeout(1000)
    dump = page.evaluate("[...new Set([...document.querySelectorAll('[data-testid]')].map(e => e.dataset.testid))]")
    (ARTIFACTS / f"browser-page-{path or 'home'}.testids.txt").write_text("\n".join(sorted(dump)))
    page.screenshot(path=str(ARTIFACTS / f"browser-page-{path or 'home'}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    page.close()
