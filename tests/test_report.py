"""The HTML report (`snakemake --report`) opened in headless Chromium: the app renders and
every figure of the paper target decodes in the browser."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import TRACKED
from tests.system_packages import apt_install
from tests.workflow_runs import CI_CONFIG, snakemake

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: the flags Chromium needs as root in a container without a display or network
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: the PNG images the page shows, decoded: (natural width, natural height)
SHOWN_IMAGES = (
    "return Array.from(document.images)"
    ".filter(i => i.src.startsWith('data:image/png') && i.complete && i.naturalWidth > 0)"
    ".map(i => [i.naturalWidth, i.naturalHeight])"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    reason = apt_install(["chromium", "chromium-driver"], [CHROMIUM, DRIVER])
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_category(browser, url: str, category: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: category in d.find_element("tag name", "body").text)
    browser.find_element("xpath", f"//*[normalize-space(text())='{category}']").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements("xpath", "//tr/td[1]"))


#: the report's rows of the open category: each row's cells (labels, or the path)
ROWS = "//tr[td]"


def view_row(browser, url: str, category: str, i: int) -> None:  # type: ignore[no-untyped-def]
    open_category(browser, url, category)
    browser.find_elements("xpath", ROWS)[i].find_element("xpath", ".//a[@iconname='eye']").click()


def framed_text(browser) -> str:  # type: ignore[no-untyped-def]
    """The text of the HTML page the report shows in its frame."""
    from selenium.webdriver.support.ui import WebDriverWait

    # the list stays in front of the page until the reader closes it (the menu's "x")
    close = "//a[@type='button' and contains(@class, 'bg-transparent')]"
    WebDriverWait(browser, 15).until(lambda d: [x for x in d.find_elements("xpath", close) if x.is_displayed()])[
        0
    ].click()
    frame = WebDriverWait(browser, 15).until(lambda d: d.find_elements("tag name", "iframe"))[0]
    WebDriverWait(browser, 15).until(lambda d: frame.size["width"] > 600)
    browser.switch_to.frame(frame)
    try:
        return WebDriverWait(browser, 15).until(lambda d: d.find_element("tag name", "body").text)
    finally:
        browser.switch_to.default_content()


@pytest.mark.slow
def test_report_renders_every_figure_in_chromium(ci_run: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Clicks through the report as a reader would: each category, each item's view button.
    Every figure must be shown and decoded by the browser; every paper table must be a page
    with its rows, listed in the paper's order; the run's synthetic films must be said on
    the front page, on "About this run" and on every table page."""
    from selenium.webdriver.support.ui import WebDriverWait

    report = ci_run / "results" / "report.html"
    proc = snakemake(ci_run, "--report", str(report), *CI_CONFIG, TRACKED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    browser.set_window_size(1400, 1000)
    url = report.as_uri()
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: "SYNTHETIC DATA" in d.find_element("tag name", "body").text)
    categories = browser.execute_script("return Object.keys(categories)")
    assert set(categories) == {
        *("About this run", "Segmentation", "Biomarkers", "Classification", "Confound audit"),
        *("Paper tables", "Paper figures"),
    }
    pngs = browser.execute_script("return Object.keys(results).filter(p => p.endsWith('.png'))")
    shown: list[list[list[int]]] = []
    numbers: dict[str, list[str]] = {}
    pages: dict[str, str] = {}
    for category in categories:
        open_category(browser, url, category)
        rows = [[td.text for td in tr.find_elements("xpath", "./td")] for tr in browser.find_elements("xpath", ROWS)]
        numbers[category] = [r[0] for r in rows]
        for i in range(len(rows)):
            view_row(browser, url, category, i)
            if category in ("Paper tables", "About this run"):
                pages[" ".join(rows[i][:2])] = framed_text(browser)
            else:
                shown.append(WebDriverWait(browser, 15).until(lambda d: d.execute_script(SHOWN_IMAGES)))
    figures = [
        "results/segmentation/figures/jaccard.png",
        *[f"results/biomarkers/figures/{f}.png" for f in ("features", "ctr_scatter", "histograms", "examples")],
        *[
            f"results/evaluation/{m}/seed_{s}/{f}.png"
            for m in ("local", "global")
            for s in (2020,)
            for f in ("confusion", "reliability")
        ],
        "results/saliency/local/figure.png",
        "results/audit/figure.png",
        "results/paper/fig8_training_curves.png",
    ]
    paper_figures = [p for p in pngs if p.startswith("results/paper/")]
    assert set(figures) <= set(pngs) and len(shown) == len(pngs)
    # every figure of results/paper/ is under "Paper figures", listed by number
    assert len(numbers["Paper figures"]) == len(paper_figures) >= 9
    assert numbers["Paper figures"] == sorted(numbers["Paper figures"], key=int)
    for [(width, height)] in shown:
        assert width > 200 and height > 100, (width, height)
    # 13: leave-one-source-out, off; 15: within class (the audit is on), 16: mask Dice by class
    assert sorted({int(n) for n in numbers["Paper tables"]}) == [*range(1, 13), 14, 15, 16]
    assert [int(n) for n in numbers["Paper tables"]] == sorted(int(n) for n in numbers["Paper tables"])
    tables = {k: v for k, v in pages.items() if "about.html" not in k}
    for key, text in tables.items():
        assert text.startswith("SYNTHETIC DATA") and "Table " in text and "Download table" in text, key
    assert "Classifier local" in pages[next(k for k in pages if "about.html" in k)]
