"""The app in a real browser: headless Debian Chromium driven by Playwright.

Opens every tab, checks its key controls, generates and renders prompts, and saves a
screenshot of each tab under test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from conftest import TRAIN_OVERRIDES

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download fails offline; Debian's chromium with these flags works.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, free_port):
    from promptrl.app import build_app, serve

    demo = build_app("tiny", runs_dir=tmp_path_factory.mktemp("browser-runs"), device="cpu")
    port = free_port()
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        yield page
        browser.close()


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str):
    """Click tab `name`; returns its panel (hidden tabs' panels are left out of the role query)."""
    page.get_by_role("tab", name=name, exact=True).click()
    return page.get_by_role("tabpanel")


def test_generate_tab_makes_prompts(page):
    from playwright.sync_api import expect

    expect(page.locator("#train-status")).to_contain_text("Training: idle")
    panel = page.get_by_role("tabpanel")
    page.locator("#ideas textarea").fill("a lighthouse in a storm\na cat astronaut")
    for label in ("Temperature", "Top-p", "Max tokens (1-128)", "Prompts per idea (1-8)", "Seed"):
        expect(panel.get_by_label(label).first).to_be_visible()
    page.locator("#generate-btn").click()
    expect(page.locator("#generate-status")).to_contain_text("4 prompt(s) from each model")
    tuned = page.locator("#tuned-prompts textarea").input_value()
    assert len(tuned.split("\n")) == 4 and tuned.strip()
    assert page.locator("#start-prompts textarea").input_value().strip()
    shoot(page, "1-generate")


def test_render_tab_shows_captioned_images(page):
    from playwright.sync_api import expect

    panel = open_tab(page, "Render & score")
    rows = panel.get_by_role("grid", name="Rows")  # filled by Generate
    expect(rows.get_by_role("gridcell", name="a lighthouse in a storm").first).to_be_visible()
    panel.get_by_label("Rows to render", exact=False).fill("1-2")
    page.locator("#render-btn").click()
    expect(page.locator("#render-status")).to_contain_text("Rendered 2 row(s)")
    expect(page.locator("#tuned-gallery img")).to_have_count(2)
    expect(page.locator("#start-gallery img")).to_have_count(2)
    expect(page.locator("#tuned-gallery").get_by_text("reward", exact=False).first).to_be_visible()
    shoot(page, "2-render")


def test_train_tab_trains_with_live_status_plots_and_samples(page):
    from playwright.sync_api import expect

    panel = open_tab(page, "Train")
    for element in ("#start-btn", "#stop-btn", "#download-btn"):
        expect(page.locator(element)).to_be_visible()
    for label in ("Preset", "aesthetic weight", "similarity weight", "penalty weight"):
        expect(panel.get_by_label(label).first).to_be_visible()
    for text in ("Config YAML", "Ideas file", "Reward (mean per step)", "Samples", "Hyperparameters"):
        expect(panel.get_by_text(text, exact=False).first).to_be_visible()
    page.locator("#stop-btn").click()
    expect(page.locator("#train-message")).to_contain_text("No run is going")

    panel.get_by_label("Steps", exact=False).fill("2")
    panel.get_by_text("Hyperparameters", exact=True).click()
    panel.get_by_label("key=value", exact=False).fill(TRAIN_OVERRIDES)
    page.locator("#start-btn").click()
    expect(page.locator("#train-message")).to_contain_text("Started a run of 2 steps")
    # Only the gr.Timer's polling moves the status on from here.
    expect(page.locator("#train-status")).to_contain_text("finished: 2 of 2 steps", timeout=180_000)
    expect(page.locator("#samples img").first).to_be_visible()
    expect(panel.locator("canvas, svg").first).to_be_visible()  # the plots drew something
    page.locator("#download-btn").click()
    expect(page.locator("#train-message")).to_contain_text("Zipped")
    shoot(page, "3-train")


def test_rate_tab_takes_choices_by_key_in_pairs_and_fours(page):
    from playwright.sync_api import expect

    panel = open_tab(page, "Rate")
    status = page.locator("#rate-status")
    page.locator("#rate-idea textarea").fill("a lighthouse in a storm")
    page.locator("#rate-next").click()
    expect(status).to_contain_text("Idea: a lighthouse in a storm. 0 choice(s) by local")
    expect(panel.locator("img")).to_have_count(2)
    page.locator("#rate-next").focus()  # keys count unless a text box has the focus
    page.keyboard.press("1")  # A is better
    expect(status).to_contain_text("1 choice(s) by local")
    page.keyboard.press("t")  # a tie
    expect(status).to_contain_text("2 choice(s) by local")

    page.locator("#rate-four input").check()
    expect(page.locator("#rate-c")).to_be_visible()
    expect(page.locator("#rate-tie")).to_be_hidden()  # no tie among four
    page.locator("#rate-next").click()
    expect(panel.locator("img")).to_have_count(4)
    page.locator("#rate-next").focus()
    page.keyboard.press("3")  # C is the best of four: one choice
    expect(status).to_contain_text("3 choice(s) by local")

    page.locator("#rate-idea textarea").focus()
    page.keyboard.press("2")  # typed into the box, not a choice
    expect(page.locator("#rate-idea textarea")).to_have_value("a lighthouse in a storm2")
    expect(status).to_contain_text("3 choice(s) by local")
    shoot(page, "4-rate")


def test_model_tab_describes_the_models(page):
    from playwright.sync_api import expect

    open_tab(page, "Model")
    info = page.locator("#model-info")
    for text in ("Prompt generator", "Diffusion pipeline", "Scorers", "cpu"):
        expect(info).to_contain_text(text)
    shoot(page, "5-model")
