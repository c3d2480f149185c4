"""What a new user met in Chromium on this machine (issue 29), each as a browser test that failed on the lab as it
was (``DECODING_LAB_APP_ROOT`` serves another checkout) and passes now; long work made visible; the start page,
the presentation mode and each method page's takeaway line. The embedded model, Debian's chromium."""

import json
import re
import time
from pathlib import Path

from tests.test_browser import ARTIFACTS, browser, pytestmark, server, start_app  # noqa: F401  (fixtures, marks)
from tests.test_browser_trust import TIMEOUT, no_exception, open_page, set_max_new_tokens, wait_until_idle

SCIENTIFIC = re.compile(r"\b\d(\.\d+)?e[-+]\d+\b")
CUT = """() => {
  const cut = [];
  for (const el of document.querySelectorAll('[data-testid="stMetricValue"] > div, [data-testid="stMetricLabel"] p')) {
    if (el.scrollWidth > el.clientWidth + 1) cut.push(el.innerText);
  }
  for (const el of document.querySelectorAll('[data-testid="stTable"], [data-testid="stDataFrame"] .dvn-scroller')) {
    if (el.scrollWidth > el.clientWidth + 1) cut.push('a table ' + el.scrollWidth + 'px wide in ' + el.clientWidth);
  }
  return cut;
}"""


def click_run(page, name: str = "Run") -> None:
    wait_until_idle(page)
    page.get_by_role("button", name=name, exact=True).first.click()
    page.wait_for_timeout(1500)
    wait_until_idle(page)


def table_rows(page) -> list[list[str]]:
    """Every row of every table on the page, each a list of its cells' text."""
    return page.evaluate(
        "() => [...document.querySelectorAll('table')].flatMap(t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim())))"
    )


def tables_text(page) -> str:
    return "\n".join("\t".join(row) for row in table_rows(page))


def test_key_figures_are_never_cut_and_tables_fit_their_column_without_scientific_notation(server, browser):  # noqa: F811
    """A narrow window (1,100 px): the Compare page's three columns of metrics and its cost table, after a run
    of its default methods (pld's draft costs a few ten-thousandths of an AR step)."""
    page = browser.new_page(viewport={"width": 1100, "height": 3000})
    page.goto(server + "/compare")
    set_max_new_tokens(page, 16)
    click_run(page)
    page.get_by_text("Cost model: why each method is as fast as it is").first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "defects-compare-narrow.png"), full_page=True)
    assert page.evaluate(CUT) == []
    shown = page.inner_text("body") + tables_text(page)
    assert not SCIENTIFIC.search(shown), SCIENTIFIC.search(shown)
    no_exception(page)


def test_sot_and_sgd_on_the_compare_page_show_each_point_under_its_heading(server, browser):  # noqa: F811
    page = open_page(browser, server + "/compare")
    set_max_new_tokens(page, 24)
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Methods")
    while box.locator("button[aria-label^='Remove ']").count():  # the defaults go: sot alone is what this reads
        box.locator("button[aria-label^='Remove ']").first.click()
        wait_until_idle(page)
    box.locator("input").click()
    box.locator("input").fill("sot")
    page.get_by_role("option", name="sot: Skeleton-of-Thought", exact=True).click()
    page.keyboard.press("Escape")
    wait_until_idle(page)
    chips = box.locator("[aria-label='Selected values'] [data-tag]").all_inner_texts()
    assert [c.split(":")[0] for c in chips] == ["sot"], chips
    click_run(page)
    points = page.locator(".dl-points .dl-point-title")
    points.first.wait_for(timeout=TIMEOUT)
    titles = [t.inner_text() for t in points.all()]
    assert len(titles) >= 2 and titles[0].startswith("1. ") and titles[1].startswith("2. ")
    no_exception(page)


def test_the_tree_explorer_opens_fitted_and_centred(server, browser):  # noqa: F811
    page = open_page(browser, server + "/draft_trees")
    set_max_new_tokens(page, 16)
    click_run(page)
    page.get_by_role("tab", name=re.compile("Explore it")).click()
    page.wait_for_timeout(1500)
    frame = next(f for f in page.frames if f.query_selector("#mynetwork"))
    placed = frame.evaluate(
        """() => { const box = document.getElementById('mynetwork').getBoundingClientRect();
           const ids = nodes.getIds(), pos = network.getPositions(ids);
           const dom = ids.map(id => network.canvasToDOM(pos[id]));
           const xs = dom.map(p => p.x), ys = dom.map(p => p.y);
           return {w: box.width, h: box.height, x0: Math.min(...xs), x1: Math.max(...xs),
                   y0: Math.min(...ys), y1: Math.max(...ys)}; }"""
    )
    assert placed["w"] > 100 and placed["h"] > 100, placed
    assert 0 <= placed["x0"] and placed["x1"] <= placed["w"] and 0 <= placed["y0"] and placed["y1"] <= placed["h"]
    centre = ((placed["x0"] + placed["x1"]) / 2, (placed["y0"] + placed["y1"]) / 2)
    assert abs(centre[0] - placed["w"] / 2) < 0.2 * placed["w"] and abs(centre[1] - placed["h"] / 2) < 0.2 * placed["h"]


def test_the_rule_comparison_table_and_chart_tell_the_same_figures_with_depth_counted_from_1(server, browser):  # noqa: F811
    page = open_page(browser, server + "/draft_trees")
    set_max_new_tokens(page, 24)
    click_run(page, "Compare rules at temperature 1 (where they differ)")
    page.get_by_text("Rules compared on the same prompt and settings").first.wait_for(timeout=TIMEOUT)
    find = """() => { for (const el of document.querySelectorAll('.js-plotly-plot')) {
             const title = el.layout && el.layout.title && (el.layout.title.text || el.layout.title);
             if (String(title).includes('Acceptance per draft depth') && el.data.length === 3)
               return Object.fromEntries(el.data.map(t => [t.name, t.y])); }
           return null; }"""
    page.wait_for_function(find, timeout=TIMEOUT)
    bars = page.evaluate(find)
    assert "depth 0" not in tables_text(page)  # depth 1 is the first drafted token, in every view
    table = table_rows(page)
    start = next(i for i, r in enumerate(table) if "accepted at depth 1" in r)  # the rules table's header
    column = table[start].index("accepted at depth 1")
    rows = {r[0]: r for r in table[start + 1 : start + 5]}
    for name, label in (("rrs", "RRS (with replacement)"), ("rrsw", "RRS without replacement"), ("spechub", "SpecHub (k = 2)")):
        assert abs(float(rows[label][column]) - bars[name][0]) < 0.006, (name, rows[label][column], bars[name][0])


def test_a_run_shown_says_when_its_settings_are_not_the_controls_and_v_n_is_never_below_1(server, browser):  # noqa: F811
    """The SPEED page opens on a recorded run of 40 tokens while the sidebar says 64; the verify-cost chart of the
    Draft trees page draws what the cost model uses, a measured v(n) < 1 marked as timing noise."""
    page = open_page(browser, server + "/pipeline")
    page.get_by_text(re.compile(r"The run shown used max new tokens 40")).first.wait_for(timeout=TIMEOUT)
    page = open_page(browser, server + "/draft_trees")
    page.get_by_text("Verify cost v(n) on this device").click()
    find = """() => { for (const el of document.querySelectorAll('.js-plotly-plot')) {
             if (el.layout && el.layout.xaxis && String(el.layout.xaxis.title.text || el.layout.xaxis.title)
                   .includes('tokens verified')) return el.data.map(t => ({name: t.name, y: t.y})); }
           return null; }"""
    page.wait_for_function(find, timeout=TIMEOUT, polling=250)  # drawn when the expander opens (on a busy
    # machine, later than the 2 s this test once waited)
    curve = page.evaluate(find)
    assert curve is not None
    assert min(curve[0]["y"]) >= 1.0, curve[0]
    cached = sorted((Path.home() / ".cache" / "decoding-lab" / "cost").glob("smollm2-135m-instruct-cpu-float32.json"))
    if cached and min(json.loads(cached[0].read_text())["relative"]) < 1.0:
        assert any("noise" in str(t["name"]) for t in curve[1:]), curve


def test_a_refusal_is_one_sentence_without_a_red_warm_up_box(server, browser):  # noqa: F811
    page = open_page(browser, server + "/autoregressive")
    page.get_by_label("Prompt", exact=True).fill("   ")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    click_run(page)
    page.get_by_text(re.compile("prompt is empty")).first.wait_for(timeout=TIMEOUT)
    assert page.get_by_text(re.compile(r"Warming up .* failed")).count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    no_exception(page)


def test_a_live_run_leaves_nothing_greyed_of_the_example_and_the_benchmark_names_its_run(server, browser):  # noqa: F811
    page = open_page(browser, server + "/pipeline")
    page.get_by_text("Showing the recorded example").first.wait_for(timeout=TIMEOUT)
    wait_until_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text(re.compile("^timing")).first.wait_for(timeout=TIMEOUT)  # the run is being timed now
    stale = page.evaluate(
        "() => [...document.querySelectorAll('[data-stale=\"true\"] [data-testid=\"stMetric\"]')].length"
    )
    assert stale == 0
    wait_until_idle(page)
    page = open_page(browser, server + "/benchmark")
    set_max_new_tokens(page, 4)
    page.get_by_label("Prompts (0 = all)").fill("1")
    page.get_by_label("Prompts (0 = all)").press("Enter")
    for names in ("ar, hf", "ar"):
        if names == "ar":  # the second run: hf taken out of the methods
            page.get_by_test_id("stMultiSelect").filter(has_text="Methods").get_by_role("button", name=re.compile("hf")).first.click()
            wait_until_idle(page)
        click_run(page, "Run benchmark")
        page.get_by_text(re.compile(rf"^This run: {re.escape(names)} on 1 prompts")).first.wait_for(timeout=TIMEOUT)
    assert page.get_by_text(re.compile(r"^This run: ar, hf on")).count() == 0


def test_the_how_it_works_diagrams_read_at_12_px_or_more(server, browser):  # noqa: F811
    page = open_page(browser, server + "/how_it_works")
    page.locator("svg text").first.wait_for(timeout=TIMEOUT)
    page.wait_for_timeout(1500)
    heights = page.evaluate("() => [...document.querySelectorAll('svg text')].map(t => t.getBoundingClientRect().height)")
    assert heights and min(heights) >= 12, sorted(heights)[:5]


def test_the_first_page_shows_something_useful_within_2_s_of_a_cold_start(browser):  # noqa: F811
    url, proc, log = start_app("streamlit-cold.log")  # a fresh server: nothing imported yet
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading", name="Decoding Lab").first.wait_for(timeout=60_000)
        shown = time.perf_counter() - t0
        assert shown < 2.0, shown
        assert page.get_by_role("link", name="Draft trees").count() >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_long_work_says_how_long_and_can_be_cut_or_stopped(server, browser):  # noqa: F811
    """A prompt of thousands of tokens is priced before it runs and can be cut; a long run shows its tokens and
    time left, and stops when asked."""
    page = open_page(browser, server + "/autoregressive")
    box = page.get_by_label("Prompt", exact=True)
    box.fill("The history of the bicycle is long and varied. " * 700 + "Summarise this.")
    box.press("Control+Enter")
    warning = page.get_by_text(re.compile(r"reading it \(the prefill\) will take about \d+ s"))
    warning.first.wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name=re.compile("^Cut the prompt to its last")).click()
    wait_until_idle(page)
    assert len(page.get_by_label("Prompt", exact=True).input_value()) < len("The history of the bicycle is long and varied. ") * 350
    assert page.get_by_text(re.compile(r"will take about")).count() == 0
    box.fill("Tell me a long story about the sea.")
    box.press("Control+Enter")
    set_max_new_tokens(page, 400)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text(re.compile(r"^timing: \d+ of 400 tokens, about \d+")).first.wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="Stop this run").first.click()
    page.get_by_text("The run was stopped before it finished").first.wait_for(timeout=TIMEOUT)
    no_exception(page)


def test_the_start_page_plays_compare_and_the_presentation_mode_is_for_a_room(server, browser):  # noqa: F811
    page = open_page(browser, server)
    page.get_by_role("heading", name="Decoding Lab").first.wait_for(timeout=TIMEOUT)
    page.locator("[data-testid='stPageLink']").first.wait_for(timeout=TIMEOUT)
    links = " ".join(page.locator("[data-testid='stPageLink']").all_inner_texts())
    for title in ("Autoregressive", "Draft trees", "Blockwise", "SPEED pipeline", "Skeleton graph", "Compare"):
        assert title in links, (title, links)
    page.get_by_role("button", name="Play the Compare page on the embedded model").click()
    page.get_by_text("speedup vs AR (decode clock)").first.wait_for(timeout=TIMEOUT)
    wait_until_idle(page)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "/draft_trees?present=1")
    page.get_by_role("heading", name="Draft trees").first.wait_for(timeout=TIMEOUT)
    wait_until_idle(page)
    assert not page.locator("[data-testid='stSidebar']").is_visible()
    size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.stMainBlockContainer p')).fontSize)")
    assert size >= 20, size
    set_max_new_tokens_hidden = page.get_by_role("button", name="Run", exact=True)
    set_max_new_tokens_hidden.click()
    page.get_by_text(re.compile(r"committed \d\.\d\d tokens per target forward: \d\.\d\dx AR's speed")).first.wait_for(
        timeout=TIMEOUT
    )
    page.screenshot(path=str(ARTIFACTS / "defects-presentation.png"))
    no_exception(page)
