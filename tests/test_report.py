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


@pytest.mark.slow
def test_report_renders_every_figure_in_chromium(ci_run: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Clicks through the report as a reader would: each category, each figure's view
    button; the figure must be shown and decoded by the browser."""
    from selenium.webdriver.support.ui import WebDriverWait

    report = ci_run / "results" / "report.html"
    proc = snakemake(ci_run, "--report", str(report), *CI_CONFIG, TRACKED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    browser.set_window_size(1400, 1000)
    url = report.as_uri()
    browser.get(url)
    categories = browser.execute_script("return Object.keys(categories)")
    assert set(categories) == {
        *("Segmentation", "Biomarkers", "Classification", "Confound audit", "Paper tables", "Paper figures")
    }
    shown: dict[str, list[list[int]]] = {}
    listed: list[str] = []
    for category in categories:
        open_category(browser, url, category)
        paths = [td.text for td in browser.find_elements("xpath", "//tr/td[1]")]
        listed += paths
        for path in [p for p in paths if p.endswith(".png")]:
            open_category(browser, url, category)
            browser.find_element("xpath", f"//tr[td[normalize-space(text())='{path}']]//a[@iconname='eye']").click()
            shown[path] = WebDriverWait(browser, 15).until(lambda d: d.execute_script(SHOWN_IMAGES))
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
    assert sorted(shown) == sorted(figures)
    for path, [(width, height)] in shown.items():
        assert width > 200 and height > 100, (path, width, height)
    # 13: leave-one-source-out, off; 15: within class (the audit is on), 16: mask Dice by class
    tables = {f"results/paper/table{i}" for i in (*range(1, 13), 14, 15, 16)}
    assert tables == {p.split("_")[0] for p in listed if p.endswith(".tsv")}
