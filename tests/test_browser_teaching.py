"""Issue 14 in a real browser (Debian's chromium, the embedded model): the race replays runs on their clocks and
answers its controls, the cost-model panel shows the run's figures and answers its sliders, and the pyvis
explorers show a clicked node's details. Screenshots are kept under artifacts/."""

import time

from tests.test_browser import ARTIFACTS, browser, pytestmark, server  # noqa: F401  (fixtures, marks)
from tests.test_browser_trust import TIMEOUT, no_exception, open_page, set_max_new_tokens, wait_until_idle


def frame_with(page, selector: str, timeout_s: float = 60):
    """The (i)frame of the page that holds ``selector``: the race and the explorers are iframes."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for frame in page.frames:
            try:
                if frame.query_selector(selector):
                    return frame
            except Exception:  # a frame that navigated away while we asked
                continue
        page.wait_for_timeout(250)
    raise AssertionError(f"no frame holds {selector}")


def metric_values(page, label: str) -> list[str]:
    """The values of every metric with exactly this label, in page order."""
    out = []
    for m in page.locator("[data-testid='stMetric']").all():
        lines = [x.strip() for x in m.inner_text().splitlines() if x.strip()]
        if lines and lines[0] == label:
            out.append(lines[1])
    return out


def click_node(page, frame, index: int) -> str:
    """Click node ``index`` of a vis-network explorer; the details box's text."""
    frame.wait_for_function("typeof network !== 'undefined' && typeof network.getPositions === 'function'")
    page.wait_for_timeout(1200)  # let the network fit itself to its (now visible) frame
    pos = frame.evaluate(
        "(i) => { const id = nodes.getIds()[i]; network.fit();"
        " return network.canvasToDOM(network.getPositions([id])[id]); }",
        index,
    )
    frame.locator("#mynetwork").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = frame.locator("#mynetwork").bounding_box()
    page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    page.wait_for_timeout(400)
    return frame.locator("#dl-detail").inner_text()


def test_method_page_races_the_run_against_ar_and_explains_its_speedup(server, browser):  # noqa: F811
    page = open_page(browser, server + "/draft_trees")
    set_max_new_tokens(page, 32)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Race: the runs replayed on their own clocks").wait_for(timeout=TIMEOUT)
    race = frame_with(page, "#play")
    lanes = race.locator(".lane")
    assert lanes.count() == 2  # the method and AR
    race.select_option("#speed", "4.0")
    race.click("#play")
    page.wait_for_timeout(1200)
    race.click("#pause")
    t = float(race.evaluate("document.body.dataset.t"))
    assert t > 0.5  # the replay moved at about 4x its measured clock
    race.evaluate(
        "() => { const c = document.getElementById('cursor'); c.value = c.max; c.dispatchEvent(new Event('input')); }"
    )
    raced = sorted(int(x.get_attribute("data-tokens")) for x in lanes.all())
    assert raced == sorted(int(v) for v in metric_values(page, "tokens"))  # the figures of the run
    race.locator("body").screenshot(path=str(ARTIFACTS / "teaching-race-draft-trees.png"))

    page.get_by_text("Cost model: why this speedup").wait_for(timeout=TIMEOUT)
    assert metric_values(page, "speedup, measured") == metric_values(page, "speedup vs AR")[:1]
    verdict = page.get_by_text("At these settings the model predicts")
    before = verdict.inner_text()
    slider = page.get_by_role("slider", name="acceptance at every depth")
    slider.focus()
    slider.press("End")  # acceptance 1 at every depth
    page.wait_for_function(
        "(b) => [...document.querySelectorAll('p')]"
        ".some(p => p.innerText.startsWith('At these settings') && p.innerText !== b)",
        arg=before,
        timeout=TIMEOUT,
    )
    wait_until_idle(page)  # the slider reran the page: the chart is redrawn before it can be scrolled to
    page.get_by_text("Predicted speedup against acceptance").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "teaching-cost-panel.png"), full_page=True)

    page.get_by_role("tab", name="Explore it (drag, zoom, click a node)").click()
    explorer = frame_with(page, "#mynetwork")
    detail = click_node(page, explorer, 1)
    assert "p (target, under its parent)" in detail and "q (draft)" in detail and "status" in detail
    explorer.locator("body").screenshot(path=str(ARTIFACTS / "teaching-tree-explorer.png"))
    no_exception(page)


def test_skeleton_dag_explorer_shows_a_points_text_model_and_timing(server, browser):  # noqa: F811
    page = open_page(browser, server + "/skeleton_graph")
    page.get_by_text("Showing the recorded example").wait_for(timeout=TIMEOUT)
    page.get_by_role("tab", name="Explore it (drag, zoom, click a point)").click()
    explorer = frame_with(page, "#mynetwork")
    detail = click_node(page, explorer, 0)
    assert detail.startswith("point 1:") and "model " in detail and "wave 1" in detail and "decoded from" in detail
    explorer.locator("body").screenshot(path=str(ARTIFACTS / "teaching-dag-explorer.png"))
    no_exception(page)


def test_compare_races_every_method(server, browser):  # noqa: F811
    page = open_page(browser, server + "/compare")
    set_max_new_tokens(page, 16)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Race: the runs replayed on their own clocks").wait_for(timeout=TIMEOUT)
    race = frame_with(page, "#play")
    names = [x.inner_text().splitlines()[0] for x in race.locator(".who").all()]
    assert names == ["ar", "hf", "pld", "rrs"]
    race.click("#play")
    page.wait_for_timeout(800)
    race.locator("body").screenshot(path=str(ARTIFACTS / "teaching-race-compare.png"))
    page.get_by_text("Cost model: why each method is as fast as it is").wait_for(timeout=TIMEOUT)
    assert metric_values(page, "speedup, measured")  # one method's whole panel under the table
    no_exception(page)
