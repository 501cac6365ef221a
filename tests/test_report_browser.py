"""The HTML report in a real browser: headless Chromium opens the file as a reader would
(`file://`, nothing served), at the width of an A4 page, and prints it to PDF.

The page throws and logs nothing and fetches nothing; the chart has one bar group a week, its
bars inside the plot and its week labels apart; a year of weeks still fits. Screenshots of the
page, the chart and a customer's contract use are checked to be pictures and kept with
`SLA_CONNECTOR_SCREENSHOTS=DIR` (the README's: `docs/images/report`).

Skipped, with one line saying so, where Chromium and ChromeDriver are not installed (as
tests/test_apps_browser.py, whose helpers this uses).
"""

from __future__ import annotations

import base64
import copy
import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.report.html import render_html
from tests.test_apps_browser import CHROMEDRIVER, CHROMIUM, MISSING, _check_png, chromium
from tests.test_report_html import EMPTY, HOSTILE, SAMPLE, year_by_week

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("SLA_CONNECTOR_REQUIRE_BROWSER"),
    reason=MISSING,
)

A4 = {"width": 794, "height": 1123}  # CSS px: 210 x 297 mm at 96 px an inch
MAX_SAMPLE_PAGES = 3  # summary and chart; compliance of three groups; contract use

# Installed before the page's own content: what the page throws, and what it would fetch
# against its Content-Security-Policy, lands in window.__errors.
ERROR_HOOK = """
window.__errors = [];
addEventListener('error', function (e) {
  __errors.push(String(e.message || (e.target && e.target.outerHTML) || e));
}, true);
addEventListener('unhandledrejection', function (e) { __errors.push(String(e.reason)); });
document.addEventListener('securitypolicyviolation', function (e) {
  __errors.push('blocked by the page\\'s policy: ' + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(A4["width"], A4["height"]) as driver:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_HOOK})
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("SLA_CONNECTOR_SCREENSHOTS")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_report(browser: Any, tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """Writes the report's page to a file and opens it at A4 width; at the end, the page
    must have thrown, logged and fetched nothing."""
    browser.get_log("browser")  # what an earlier test's page logged is not this test's
    opened: list[str] = []

    def open_(report: dict[str, Any]) -> Any:
        path = tmp_path / f"report-{len(opened)}.html"
        path.write_text(render_html(report), encoding="utf-8")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {**A4, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.get(path.as_uri())
        assert browser.execute_script("return document.readyState;") == "complete"
        opened.append(path.name)
        _assert_quiet(browser)
        return browser

    yield open_
    if opened:
        _assert_quiet(browser)


def _assert_quiet(driver: Any) -> None:
    logged = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    caught = driver.execute_script("return window.__errors || [];")
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name);"
    )
    assert (logged, caught, fetched) == ([], [], [])


def _box(driver: Any, selector: str) -> list[dict[str, float]]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => {"
            " const r = e.getBoundingClientRect();"
            " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
            " width: r.width, height: r.height}; });",
            selector,
        )
    )


def _assert_chart_readable(driver: Any, weeks: int, plots: int = 1) -> None:
    """One bar group a week in each plot; bars on the plot's baseline and under its top
    gridline; week labels under the last plot and apart from each other; counts inside their
    bars; nothing wider than the page."""
    [chart] = _box(driver, "svg.chart")
    assert chart["width"] > 600
    assert chart["height"] > 150
    assert len(_box(driver, "svg.chart g.plot")) == plots
    baseline = 0.0
    for plot in range(1, plots + 1):
        inside = f"svg.chart g.plot:nth-of-type({plot})"
        assert len(_box(driver, f"{inside} g.week")) == weeks
        lines = sorted(_box(driver, f"{inside} > line"), key=lambda b: b["top"])
        assert len(lines) >= 2
        top, baseline = lines[0]["top"], lines[-1]["top"]
        bars = _box(driver, f"{inside} rect.bar")
        assert bars
        for bar in bars:
            assert bar["top"] >= top - 0.5
            assert bar["bottom"] <= baseline + 0.5
            assert chart["left"] <= bar["left"]
            assert bar["right"] <= chart["right"]
        for count in _box(driver, f"{inside} text.count"):
            assert any(
                b["left"] <= count["left"] and count["right"] <= b["right"] + 0.5 for b in bars
            )
    labels = sorted(_box(driver, "svg.chart .week-label"), key=lambda b: b["left"])
    assert labels
    for label in labels:
        assert chart["left"] <= label["left"]
        assert label["right"] <= chart["right"]
        assert baseline < label["top"]
        assert label["bottom"] <= chart["bottom"]
    for before, after in itertools.pairwise(labels):
        assert before["right"] + 2 <= after["left"], (before, after)
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;"
    ), "the page is wider than an A4 page"


def test_the_page_reads_at_a4_width_and_fetches_nothing(
    open_report: Callable[[dict[str, Any]], Any], shots: Path
) -> None:
    driver = open_report(SAMPLE)
    assert driver.title == "SLA report 2026-11"
    assert driver.execute_script("return window.innerWidth;") == A4["width"]
    text = driver.find_element("tag name", "body").text
    for words in ("SLA report", "Summary", "Compliance by contract, office", "Lumen Archiv GmbH"):
        assert words in text
    _assert_chart_readable(driver, weeks=5)
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": A4["width"], "height": height, "scale": 1},
        },
    )
    page = shots / "report-page.png"
    page.write_bytes(base64.b64decode(shot["data"]))
    _check_png(page, {"width": A4["width"], "height": height})
    for name, selector in (
        ("report-chart", "figure.chart-figure"),
        ("report-customer", "article.customer"),
    ):
        element = driver.find_element("css selector", selector)
        path = shots / f"{name}.png"
        element.screenshot(str(path))
        _check_png(path, element.size)


def test_a_year_of_weeks_for_three_contracts_still_fits(
    open_report: Callable[[dict[str, Any]], Any], shots: Path
) -> None:
    driver = open_report(year_by_week())
    # 159 bars side by side would be slivers: one plot per contract instead.
    _assert_chart_readable(driver, weeks=53, plots=3)
    titles = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart .panel-title')].map(e => e.textContent);"
    )
    assert titles == ["photoprism", "pix4d-premium", "pixelz"]
    shown = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart .week-label')].map(e => e.textContent);"
    )
    assert 5 <= len(shown) < 53  # every few weeks named, not all on top of each other
    assert shown[0] == "W01"
    element = driver.find_element("css selector", "figure.chart-figure")
    path = shots / "report-chart-year.png"
    element.screenshot(str(path))
    _check_png(path, element.size)


def test_it_prints_on_a4_with_the_bars_in_colour(
    open_report: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    driver = open_report(SAMPLE)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    styles = driver.execute_script(
        "const th = getComputedStyle(document.querySelector('th'));"
        "const svg = getComputedStyle(document.querySelector('svg.chart'));"
        "const figure = getComputedStyle(document.querySelector('figure'));"
        "return [th.backgroundColor, svg.printColorAdjust, figure.breakInside];"
    )
    assert styles == ["rgba(0, 0, 0, 0)", "exact", "avoid"]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    # As from the print dialog: background graphics off, the page's own size and margins.
    printed = driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True})
    pdf = base64.b64decode(printed["data"])
    (tmp_path / "report.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    for width, height in boxes:
        # A4 in points (1/72 in): 595.28 x 841.89; Chromium rounds to its own pixels.
        assert abs(float(width) - 595.28) < 1, width
        assert abs(float(height) - 841.89) < 1, height
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    assert len(boxes) == pages
    assert 1 <= pages <= MAX_SAMPLE_PAGES, pages

    driver = open_report(EMPTY)
    printed = driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True})
    pdf = base64.b64decode(printed["data"])
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    assert "No targets due in this period." in driver.find_element("tag name", "body").text


def test_hostile_text_stays_text_in_the_browser(
    open_report: Callable[[dict[str, Any]], Any],
) -> None:
    report = copy.deepcopy(SAMPLE)
    trap = '"><img src=x onerror="window.__ran=1">'
    report["use"][0]["customer_name"] = HOSTILE
    report["compliance"][0]["targets"][0]["label"] = HOSTILE
    report["weekly"][0]["contract"] = trap
    report["compliance"][1]["worst"][0]["ticket"] = trap
    driver = open_report(report)
    assert driver.execute_script("return window.__ran === undefined;")
    assert driver.execute_script("return document.querySelectorAll('script, img').length;") == 0
    text = driver.find_element("tag name", "body").text
    assert HOSTILE in text
    assert trap in text
