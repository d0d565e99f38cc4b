"""What the HTML report shows beside the figures (patchcxr.paper.report): the data banner,
the configuration in prose, paper tables as readable pages, listed in the paper's order."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from patchcxr.configuration import data_banner, synthetic_inputs
from patchcxr.paper.about import about_html, config_prose
from patchcxr.paper.registry import REGISTRY
from patchcxr.paper.report import report_labels, table_html

ROOT = Path(__file__).resolve().parents[1]


def overlay(*files: str) -> dict:
    """The configuration files merged as Snakemake merges --configfile overlays."""

    def merge(a: dict, b: dict) -> dict:
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    config: dict = {}
    for f in files:
        config = merge(config, yaml.safe_load((ROOT / f).read_text()))
    return config


def test_the_banner_names_synthetic_films_and_is_silent_on_real_data() -> None:
    demo = overlay("config/config.yaml", "config/demo.yaml")
    assert synthetic_inputs(demo) == [n for n, s in demo["sources"].items() if s.get("enabled", True)]
    assert data_banner(demo).startswith("SYNTHETIC DATA") and "measure nothing" in data_banner(demo)
    real = overlay("config/config.yaml", "config/real.yaml")
    assert synthetic_inputs(real) == [] and data_banner(real) == ""
    mixed = copy.deepcopy(demo)
    mixed["sources"]["shenzhen"]["path"] = "/data/shenzhen"
    assert "shenzhen" not in synthetic_inputs(mixed)
    assert data_banner(mixed).startswith("PARTLY SYNTHETIC DATA: 5 of 6 enabled sources")


def test_the_configuration_in_prose_says_what_changes_a_result() -> None:
    config = overlay("config/config.yaml", "config/demo.yaml")
    text = " ".join(config_prose(config))
    assert "generated phantoms" in text and "four classes" in text
    assert f"K = {config['classification']['inference']['k']} patches vote" in text
    assert "Classifier global" in text and "Classifier local" in text
    seeds = ", ".join(str(s) for s in config["classification"]["train"]["seeds"])
    assert f"Training seeds: {seeds}" in text
    assert "no classified film's tracing trains the segmenter" in text  # held_out, the default
    config["classification"]["weights"]["route"] = "none"
    config["splits"]["segmentation"].update(classified="crossfit", folds=3)
    text = " ".join(config_prose(config))
    assert "from scratch" in text and "masked by one of 3 cross-fitted networks" in text
    page = about_html(config, "a: 1\n")
    assert page.index('class="banner"') < page.index("Data: ") and "<pre>a: 1\n</pre>" in page


def test_paper_items_sort_in_the_papers_order_as_the_report_sorts_labels() -> None:
    # the report sorts label values as text: zero-padded numbers keep 2 before 10
    numbers = [report_labels(e.name, e.about)["number"] for e in REGISTRY if e.kind == "table"]
    as_ints = [int(n) for n in numbers]
    assert sorted(numbers) == [f"{n:02d}" for n in sorted(as_ints)]
    assert report_labels("table10_class_source", "x") == {"number": "10", "name": "class source", "holds": "x"}
    assert report_labels("fig6_confusion_local", "y")["number"] == "06"


def test_a_table_page_shows_every_row_and_carries_its_tsv() -> None:
    table = pd.DataFrame({"class": ["normal", "tb"], "recall": [0.5, float("nan")]})
    tsv = table.to_csv(sep="\t", index=False)
    page = table_html(
        "Table 5: classification",
        "Recall per ``class``.",
        banner="SYNTHETIC DATA: x",
        table=table,
        tsv_name="t.tsv",
        tsv_text=tsv,
    )
    assert page.count("<tr") == 3 and "<td>normal</td>" in page and "–" in page
    assert "<code>class</code>" in page and 'class="banner"' in page
    data = re.search(r'href="data:text/tab-separated-values;base64,([^"]+)"', page)
    assert data is not None and base64.b64decode(data.group(1)).decode() == tsv
    assert 'class="banner"' not in table_html("T", "c", banner="", table=table, tsv_name="t.tsv", tsv_text=tsv)


@pytest.mark.parametrize("name", ["captioned.rst"])
def test_the_caption_template_puts_the_banner_first(name: str) -> None:
    import jinja2

    class Job:
        params = type("P", (), {"banner": "SYNTHETIC DATA: x", "caption": "The caption."})

    text = jinja2.Template((ROOT / "workflow" / "report" / name).read_text()).render(snakemake=Job)
    assert text.index("SYNTHETIC DATA") < text.index("The caption.")
    Job.params.banner = ""
    assert jinja2.Template((ROOT / "workflow" / "report" / name).read_text()).render(snakemake=Job).strip() == (
        "The caption."
    )
