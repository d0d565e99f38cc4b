"""Cohorts: `all` follows the label rules; `oh2020` is exactly the paper's 502 distinct files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from patchcxr.data.cohorts import OH2020_COUNTS, select_cohort
from patchcxr.data.splits import check_disjoint, classification_split
from patchcxr.synthetic import generate_source
from tests.conftest import ROOT, merge
from tests.helpers import run_data_stage, synthetic_sources

PAPER_SHEET = ROOT.parent / "shared" / "data" / "paper-cohort" / "metadata.xls"


def test_all_cohort_drops_unlabelled_and_paediatric(synthetic_manifest: Any, tmp_path: Path) -> None:
    manifest, _, _ = synthetic_manifest
    cohort = select_cohort(manifest, "all", tmp_path / "c.tsv", tmp_path / "m.tsv")
    kept = manifest[(manifest["label5"] != "") & (manifest["paediatric"] != "1")]
    assert sorted(cohort["image_id"]) == sorted(kept["image_id"])
    assert "kermany" not in set(cohort["source"])  # Kermany films are children's
    with_kids = select_cohort(manifest, "all", tmp_path / "c.tsv", tmp_path / "m.tsv", exclude_paediatric=False)
    assert "kermany" in set(with_kids["source"])


@pytest.mark.slow
@pytest.mark.skipif(
    not PAPER_SHEET.is_file(), reason="the paper's metadata.xls (../shared/data/paper-cohort) is absent"
)
def test_synthetic_tree_named_after_the_sheet_yields_the_502_distinct_films(
    tmp_path: Path, test_config: dict[str, Any]
) -> None:
    params = merge(
        test_config["synthetic"],
        {
            "cohort_sheet": str(PAPER_SHEET),
            "jsrt": {"nodule": 0},
            "montgomery": {"height": 64, "width": 64},
            "kermany": {"height": 64, "width": 64},
            "cohen": {"height": 64, "width": 64, "lateral": 0, "excluded": 0},
        },
    )
    tree = tmp_path / "tree"
    for source in ("jsrt", "scr", "montgomery", "kermany", "cohen"):
        generate_source(source, params, tree / source, tree / "ground_truth" / source)
    sources = {k: v for k, v in synthetic_sources(tree).items() if k != "shenzhen"}
    manifest, _ = run_data_stage(sources, test_config["labels"], tmp_path / "data", shard_size=100)
    cohort = select_cohort(manifest, "oh2020", tmp_path / "cohort.tsv", tmp_path / "missing.tsv", metadata=PAPER_SHEET)
    # 503 rows, one Cohen film also under CoronaHack: 502 files, as the paper's Table II
    assert len(cohort) == 502
    assert cohort["label5"].value_counts().to_dict() == OH2020_COUNTS | {"normal": OH2020_COUNTS["normal"] - 1}
    missing = pd.read_csv(tmp_path / "missing.tsv", sep="\t")
    assert missing["filename"].tolist() == ["F051E018-DAD1-4506-AD43-BE4CA29E960B.jpeg"]
    assert missing["reason"].iloc[0].startswith("listed twice in the sheet (first as Cohen et al:")
    split = classification_split(cohort, {"train": 0.7, "val": 0.1, "test": 0.2}, 407)
    check_disjoint(split, manifest)
    # the same tree without some Cohen films: the missing ones are reported, not dropped silently
    lost = manifest[manifest["source"] == "cohen"].head(5)
    partial = select_cohort(
        manifest.drop(lost.index), "oh2020", tmp_path / "c2.tsv", tmp_path / "m2.tsv", metadata=PAPER_SHEET
    )
    assert len(partial) == 497
    assert (tmp_path / "m2.tsv").read_text().count("no such file in any source") == 5


def test_each_sheet_row_left_out_names_its_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from patchcxr.data import cohorts

    sheet = pd.DataFrame(
        [
            ("Cohen et al", "a.png", "covid-19"),  # in the manifest
            ("Cohen et al", "b.png", "covid-19"),  # a duplicate of a film the manifest lacks
            ("Cohen et al", "c.jpg", "virus"),  # quarantined: corrupt
            ("Cohen et al", "d.png", "virus"),  # nowhere
            ("CoronaHack", "e.jpeg", "normal"),  # a pixel duplicate of the kept cohen/e2
            ("CoronaHack", "a.png", "normal"),  # the same file under a second sheet
        ],
        columns=["sheet", "filename", "sheet_class"],
    )
    sheet = sheet.assign(
        stem=sheet["filename"].map(cohorts._stem),
        label5=sheet["sheet_class"].map(cohorts.OH2020_CLASSES),
        patientid="",
        view="PA",
        finding="",
        sex="",
        age="",
    )
    monkeypatch.setattr(cohorts, "read_oh2020", lambda path: sheet)
    manifest = pd.DataFrame(
        [
            {"image_id": i, "source": src, "format": fmt, "label5": "", "label4": "", "patient_id": f"p:{i}",
             "paediatric": "0"}
            for i, src, fmt in (("cohen/a", "cohen", "cohen"), ("cohen/e2", "cohen", "cohen"))
        ]
    )  # fmt: skip
    quarantine = pd.DataFrame(
        {
            "file": ["/x/images/b.png", "/x/images/c.jpg", "/y/kermany/e.jpeg"],
            "source": ["cohen", "cohen", "kermany"],
            "reason": ["duplicate image: same pixels (sha256) as cohen/zz", "corrupt or truncated image: x",
                       "duplicate image: same pixels (sha256) as cohen/e2"],
        }
    )  # fmt: skip
    cohort = select_cohort(
        manifest,
        "oh2020",
        tmp_path / "c.tsv",
        tmp_path / "m.tsv",
        metadata="sheet.xls",
        quarantine=quarantine,
        source_formats={"cohen": "cohen", "kermany": "kermany"},
    )
    # a and e (found through its kept copy cohen/e2, with the CoronaHack sheet's label)
    assert cohort.set_index("image_id")["label5"].to_dict() == {"cohen/a": "covid19", "cohen/e2": "normal"}
    missing = pd.read_csv(tmp_path / "m.tsv", sep="\t").set_index("filename")["reason"]
    assert missing["b.png"] == "quarantined: duplicate image: same pixels (sha256) as cohen/zz"
    assert missing["c.jpg"] == "quarantined: corrupt or truncated image: x"
    assert missing["d.png"] == "no such file in any source"
    assert missing["a.png"] == "listed twice in the sheet (first as Cohen et al:0)"


def test_the_cohort_can_be_drawn_from_some_sources_only(synthetic_manifest: Any, tmp_path: Path) -> None:
    manifest, _, _ = synthetic_manifest
    every = select_cohort(manifest, "all", tmp_path / "a.tsv", tmp_path / "am.tsv")
    shenzhen = select_cohort(manifest, "all", tmp_path / "c.tsv", tmp_path / "m.tsv", sources=["shenzhen"])
    assert set(shenzhen["source"]) == {"shenzhen"} and len(shenzhen) == (every["source"] == "shenzhen").sum()
