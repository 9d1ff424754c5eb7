"""The app in a real browser: Playwright for Python driving Debian's Chromium (headless).

Uploads the sample clip, runs the comparison from the UI, waits for the answers and the table,
checks the ratios shown, and saves a screenshot (its path is printed). A bad request first
shows an error message, and the app keeps serving.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from test_app import AppProcess

from turboquant.storage import compression_ratio

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    proc = AppProcess(tmp_path_factory.mktemp("samples"))
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def page(tmp_path):
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            "Debian's chromium is not installed: apt-get install chromium (scripts/setup.sh --dev does)"
        )
    with sync_playwright() as p:
        # A persistent context is how Playwright takes a --user-data-dir: a fresh one per test.
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1300},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_compare_in_browser(app, page, tmp_path):
    page.goto(app.url)
    page.locator("#video-input input[type=file]").set_input_files(str(app.samples_dir / "shapes_3s.mp4"))
    expect(page.locator("#video-input video")).to_be_visible(timeout=30_000)
    slider_number = page.locator("#max-new-tokens input[type=number]")
    slider_number.fill("8")
    slider_number.press("Enter")

    # A bad request first: an error message in the page, no results.
    question = page.get_by_label("Question")
    question.fill("   ")
    page.click("#compare-button")
    expect(page.get_by_text("Type a question about the clip.")).to_be_visible(timeout=30_000)
    expect(page.locator("#answer-baseline textarea")).to_have_value("")
    page.get_by_test_id("toast-close").click()

    question.fill("What is happening in this video?")
    page.click("#compare-button")
    for mode in ("baseline", "tq4", "k4v3"):
        expect(page.locator(f"#answer-{mode} textarea")).not_to_have_value("", timeout=90_000)
    table = page.locator("#stats-table")
    tq4_ratio = f"{compression_ratio(128, 4, 4):.2f}×"  # 3.76×
    k4v3_ratio = f"{compression_ratio(128, 4, 3):.2f}×"  # 4.27×
    expect(table).to_contain_text(tq4_ratio, timeout=30_000)
    expect(table).to_contain_text(k4v3_ratio)
    expect(table).to_contain_text("TQ4 K+V")
    expect(table).to_contain_text("Baseline (16-bit)")
    expect(page.locator("#memory-summary")).to_contain_text("context tokens")
    page.get_by_text("Per-layer K/V fidelity").click()
    expect(page.locator("#fidelity-table")).to_contain_text("K cosine")
    page.wait_for_timeout(500)  # let the plot and the accordion finish drawing

    shot = tmp_path / "turboquant-app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
