"""Issue 12 in a real browser: runs apart from rendering, bounds from the model, visible progress, and what
is on screen is what was run. Debian's chromium through Playwright, the embedded model."""

import re

from tests.test_browser import ARTIFACTS, browser, pytestmark, server  # noqa: F401  (fixtures, marks)

TIMEOUT = 300_000


def open_page(browser, url: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    return page


IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText?.match(/Running|Stop/)"


def wait_until_idle(page) -> None:
    """Until Streamlit's status widget no longer offers to stop the script (a rerun has finished drawing)."""
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE, timeout=TIMEOUT, polling=250)
    page.wait_for_timeout(300)


def set_max_new_tokens(page, n: int) -> None:
    """Set the sidebar's max new tokens and wait for the rerun it starts to finish, so a click that
    follows lands on a page that is drawn and idle."""
    box = page.get_by_label("Max new tokens")
    box.wait_for(timeout=TIMEOUT)
    box.fill(str(n))
    box.press("Enter")
    page.wait_for_timeout(500)
    wait_until_idle(page)


def no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0


def test_part1_a_run_is_warmed_up_timed_quietly_then_draws_the_strip(server, browser):  # noqa: F811
    page = open_page(browser, server + "/autoregressive")
    set_max_new_tokens(page, 24)
    page.get_by_label("Prompt").fill("Name three rivers in Europe.")
    page.get_by_role("button", name="Run").click()
    page.get_by_text(re.compile(r"Warmed up ar and hf in [0-9.]+ s")).wait_for(timeout=TIMEOUT)  # stays on the page
    page.get_by_text(re.compile(r"^timing: ")).first.wait_for(timeout=TIMEOUT)  # the page is quiet: one line
    page.locator(".dl-answer").first.wait_for(timeout=TIMEOUT)  # the answer, once the run is timed
    page.get_by_text("speedup vs AR").wait_for(timeout=TIMEOUT)
    page.get_by_text("Per-token latency").wait_for(timeout=TIMEOUT)
    assert page.locator(".dl-strip").count() == 2  # one answer per method, drawn once, as the per-step strip
    assert page.locator(".dl-answer").count() == 0  # the plain answer gave way to the strip
    assert page.get_by_text(re.compile(r"^timing: ")).count() == 0  # the progress line is gone
    assert len([m for m in page.get_by_text("tokens/s", exact=True).all()]) == 2
    assert page.get_by_text("Showing the recorded example").count() == 0  # the live run is what is shown
    page.screenshot(path=str(ARTIFACTS / "trust-part1-autoregressive.png"), full_page=True)
    no_exception(page)


def test_part3_inputs_are_bounded_by_the_model_and_a_huge_tree_is_refused(server, browser):  # noqa: F811
    page = open_page(browser, server + "/draft_trees")
    page.get_by_test_id("stSelectbox").filter(has_text="Draft source").click()  # EAGLE opens by default
    page.get_by_role("option", name="self-draft (first layers + exit head)").click()
    layer = page.get_by_label("exit layer e")
    layer.wait_for(timeout=TIMEOUT)
    assert layer.get_attribute("max") == "29"  # the embedded model has 30 layers
    set_max_new_tokens(page, 8)
    for label, value in (("k (children per node)", "4"), ("depth L", "8")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(800)
    page.get_by_text("87,381 nodes").first.wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("over the limit of 512").last.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "trust-part3-bounds.png"), full_page=True)
    no_exception(page)


def test_part4_compare_shows_each_methods_answer_while_the_next_runs(server, browser):  # noqa: F811
    page = open_page(browser, server + "/compare")
    set_max_new_tokens(page, 24)
    page.get_by_role("button", name="Run").first.click()
    page.get_by_text(re.compile(r"Warm(ing|ed) up ar, ")).wait_for(timeout=TIMEOUT)
    page.get_by_text(re.compile(r"^timing: ")).first.wait_for(timeout=TIMEOUT)  # one line while a run is timed
    page.locator(".dl-answer").first.wait_for(timeout=TIMEOUT)  # a finished method's answer, as the next runs
    page.get_by_text("speedup vs AR (decode clock)").wait_for(timeout=TIMEOUT)
    no_exception(page)


def test_part5_the_example_matches_the_controls_and_a_live_run_replaces_it(server, browser):  # noqa: F811
    page = open_page(browser, server + "/autoregressive")
    caption = page.get_by_text("Showing the recorded example")
    caption.first.wait_for(timeout=TIMEOUT)
    shown = caption.first.inner_text()
    prompt = page.get_by_label("Prompt").input_value()
    assert prompt[:40] in shown  # the prompt box holds what the example ran
    set_max_new_tokens(page, 8)
    page.get_by_role("button", name="Run").click()
    page.get_by_text("speedup vs AR").wait_for(timeout=TIMEOUT)
    assert page.get_by_text("Showing the recorded example").count() == 0
    no_exception(page)


def test_part5_errors_say_what_is_wrong_where_the_user_looks(server, browser, tmp_path):  # noqa: F811
    page = open_page(browser, server + "/autoregressive")
    page.get_by_text("Replay a recorded trace").click()
    junk = tmp_path / "junk.json"
    junk.write_text('{"version": 1, "events": [1, 2]}')
    page.locator("input[type='file']").set_input_files(str(junk))
    page.get_by_text("This file is not a Decoding Lab trace").wait_for(timeout=TIMEOUT)
    page.get_by_label("Model", exact=True).click()
    page.get_by_text(re.compile("^other")).click()
    box = page.get_by_label("Model id or path")
    box.fill("./no/such/model")
    box.press("Enter")
    main_error = page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']")
    main_error.first.wait_for(timeout=TIMEOUT)
    assert "does not exist" in main_error.first.inner_text()
    no_exception(page)
