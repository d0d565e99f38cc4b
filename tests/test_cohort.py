"""Cohorts: `all` follows the label rules; `oh2020` is exactly the paper's 503 images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
def test_synthetic_tree_named_after_the_sheet_yields_the_503_images(
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
    assert len(cohort) == 503
    assert cohort["label5"].value_counts().to_dict() == OH2020_COUNTS
    assert (tmp_path / "missing.tsv").read_text().strip().count("\n") == 0  # header only
    split = classification_split(cohort, {"train": 0.7, "val": 0.1, "test": 0.2}, 407)
    check_disjoint(split, manifest)
    # the same tree without some Cohen films: the missing ones are reported, not dropped silently
    lost = manifest[manifest["source"] == "cohen"].head(5)
    partial = select_cohort(
        manifest.drop(lost.index), "oh2020", tmp_path / "c2.tsv", tmp_path / "m2.tsv", metadata=PAPER_SHEET
    )
    assert len(partial) == 498
    assert (tmp_path / "m2.tsv").read_text().count("not in the manifest") == 5
