"""Do the app's pages and the bench agree? A measurement to run on an idle machine, not a CI test.

    .venv/bin/python tools/app_timing.py [--tokens 64] [--prompt "..."] [--repeats 2]

Starts the app (embedded model), drives the Autoregressive page (ar beside hf) and the Compare page
(ar, hf, pld, rrs) in Debian's Chromium through Playwright, reads the tokens/s each page shows, stops the app,
then runs ``python -m core.bench`` with the same prompt and settings (nothing else running), and
prints both, their ratio, and whether ar/hf come in the same order.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Give three tips for learning a new language."
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def metric_values(page, label: str) -> list[float]:
    """The numbers of every st.metric whose label is ``label``, in page order."""
    out = []
    for metric in page.locator("[data-testid='stMetric']").all():
        if metric.locator("[data-testid='stMetricLabel']").inner_text().strip() == label:
            value = metric.locator("[data-testid='stMetricValue']").inner_text()
            out.append(float(re.sub(r"[^0-9.]", "", value)))
    return out


def set_tokens(page, tokens: int) -> None:
    box = page.get_by_label("Max new tokens")
    box.fill(str(tokens))
    box.press("Enter")
    page.wait_for_timeout(1500)


def autoregressive_page(page, url: str, prompt: str, tokens: int) -> dict[str, float]:
    page.goto(url)
    page.get_by_role("button", name="Run").wait_for(timeout=300_000)
    set_tokens(page, tokens)
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("speedup vs AR").wait_for(timeout=600_000)
    page.wait_for_timeout(1000)
    ar, hf = metric_values(page, "tokens/s")[:2]
    return {"ar": ar, "hf": hf}


def compare_page(page, url: str, prompt: str, tokens: int) -> dict[str, float]:
    page.goto(url + "/compare")
    page.get_by_role("button", name="Run").wait_for(timeout=300_000)
    set_tokens(page, tokens)
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Run", exact=True).click()  # the default methods: hf, pld, rrs; ar always
    page.get_by_text("speedup vs AR (tokens/s)").wait_for(timeout=600_000)
    page.wait_for_timeout(1000)
    ar, hf = metric_values(page, "tokens/s")[:2]  # the result columns run ar, hf, ... in order
    return {"ar": ar, "hf": hf}


def pages(prompt: str, tokens: int, repeats: int) -> dict[str, list[dict[str, float]]]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start_app(port)
    url = f"http://127.0.0.1:{port}"
    results: dict[str, list[dict[str, float]]] = {"autoregressive": [], "compare": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for _ in range(repeats):
                results["autoregressive"].append(autoregressive_page(page, url, prompt, tokens))
                results["compare"].append(compare_page(page, url, prompt, tokens))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return results


def bench(prompt: str, tokens: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        suite, out = Path(tmp) / "one.jsonl", Path(tmp) / "bench.json"
        suite.write_text(json.dumps({"id": "timing", "prompt": prompt, "category": "timing"}) + "\n")
        cmd = [sys.executable, "-m", "core.bench", "--prompts", str(suite), "--methods", "ar,hf"]
        cmd += ["--max-new-tokens", str(tokens), "--json", str(out)]
        subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True, capture_output=True)
        methods = json.loads(out.read_text())["methods"]
    return {name: methods[name]["tok_s"] for name in ("ar", "hf")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--repeats", type=int, default=2, help="page runs of each page (the last is reported)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    shown = pages(args.prompt, args.tokens, args.repeats)
    measured = bench(args.prompt, args.tokens)
    print(f"prompt {args.prompt!r}, {args.tokens} new tokens, T = 0 ({time.perf_counter() - t0:.0f} s)")
    print(f"bench:          ar {measured['ar']:.1f} tok/s, hf {measured['hf']:.1f} tok/s")
    ok = True
    for name, runs in shown.items():
        last = runs[-1]
        within = {m: abs(last[m] / measured[m] - 1) <= 0.15 for m in ("ar", "hf")}
        same_order = (last["ar"] > last["hf"]) == (measured["ar"] > measured["hf"])
        ok &= all(within.values()) and same_order
        print(
            f"{name + ' page:':<24}ar {last['ar']:.1f} tok/s ({last['ar'] / measured['ar']:.2f}x bench), "
            f"hf {last['hf']:.1f} tok/s ({last['hf'] / measured['hf']:.2f}x bench); within 15%: "
            f"{'yes' if all(within.values()) else 'no'}; ar/hf order as in the bench: {'yes' if same_order else 'no'}"
            f"  (all runs: {runs})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
