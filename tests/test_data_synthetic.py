"""The data stage on synthetic sources: labels, counts and masks equal the generator's truth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from patchcxr.data.harmonise import StrictModeError
from patchcxr.data.labels import LabelValue, label4_of
from patchcxr.io import read_tsv
from tests.helpers import run_data_stage

SOURCES = ["jsrt", "montgomery", "shenzhen", "kermany", "cohen"]


def truth(tree: Path) -> pd.DataFrame:
    frames = [read_tsv(tree / "ground_truth" / s / "images.tsv") for s in SOURCES]
    t = pd.concat(frames, ignore_index=True)
    return t.assign(image_id=t["source"] + "/" + t["image_id"])


def test_manifest_labels_and_counts_equal_ground_truth(synthetic_tree: Path, synthetic_manifest: Any) -> None:
    manifest, quarantine, _ = synthetic_manifest
    t = truth(synthetic_tree)
    frontal = t[t["view"] != "L"]
    assert sorted(manifest["image_id"]) == sorted(frontal["image_id"])
    merged = manifest.merge(frontal, on="image_id", suffixes=("", "_truth"))
    assert (merged["label5"] == merged["label5_truth"]).all()
    assert (merged["label4"] == merged["label5"].map(label4_of)).all()
    assert (merged["height"] == merged["height_truth"]).all() and (merged["width"] == merged["width_truth"]).all()
    # lateral films are quarantined, each with its reason
    lateral = t.loc[t["view"] == "L", "path"].tolist()
    assert len(lateral) == (quarantine["reason"].str.contains("excluded view")).sum()
    # excluded findings stay in the manifest, unlabelled; nothing else is quarantined
    assert len(quarantine) == len(lateral)
    excluded = frontal[(frontal["source"] == "cohen") & (frontal["label5"] == "")]["image_id"]
    assert len(excluded) and (manifest.set_index("image_id").loc[excluded, "label5"] == "").all()


def test_bit_depth_dtype_and_orientation(synthetic_manifest: Any) -> None:
    manifest, _, _ = synthetic_manifest
    for row in manifest.itertuples():
        img = np.asarray(Image.open(row.image_path))
        assert img.shape == (int(row.height), int(row.width))
        if row.format == "jsrt":
            assert row.bit_depth == "12" and img.dtype == np.uint16 and img.max() <= 4095
        else:
            assert row.bit_depth == "8" and img.dtype == np.uint8
        if row.mask_path:
            labels = np.asarray(Image.open(row.mask_path))
            lungs = (labels == LabelValue.LEFT_LUNG) | (labels == LabelValue.RIGHT_LUNG)
            body = img[labels == LabelValue.HEART] if (labels == LabelValue.HEART).any() else img[~lungs]
            # bones bright / air dark after harmonisation, whatever the source's encoding
            assert img[lungs].mean() < body.mean(), row.image_id


def test_masks_equal_ground_truth(synthetic_tree: Path, synthetic_manifest: Any) -> None:
    manifest, _, _ = synthetic_manifest
    masked = manifest[manifest["mask_path"] != ""]
    assert set(masked["source"]) == {"jsrt", "montgomery", "shenzhen"}
    assert (masked.loc[masked["source"] == "jsrt", "has_heart_mask"] == "1").all()
    for row in masked.itertuples():
        got = np.asarray(Image.open(row.mask_path))
        stem = row.image_id.split("/", 1)[1]
        ref = np.asarray(Image.open(synthetic_tree / "ground_truth" / row.source / "labels" / f"{stem}.png"))
        for label in (LabelValue.LEFT_LUNG, LabelValue.RIGHT_LUNG) + (
            (LabelValue.HEART,) if row.source == "jsrt" else ()
        ):
            a, b = got == label, ref == label
            dice = 2 * (a & b).sum() / (a.sum() + b.sum())
            # JSRT masks come from SCR at half resolution: edges differ by a pixel
            assert dice > (0.97 if row.source == "jsrt" else 0.999), (row.image_id, label, dice)


def test_patients_are_namespaced_and_follow_ups_grouped(synthetic_manifest: Any) -> None:
    manifest, _, _ = synthetic_manifest
    assert manifest["patient_id"].str.contains(":").all()
    cohen = manifest[manifest["source"] == "cohen"]
    assert cohen.groupby("patient_id").size().max() >= 2  # several films of one patient


def test_duplicate_image_in_two_sources_is_quarantined(
    tmp_path: Path, synthetic_tree: Path, test_config: dict[str, Any]
) -> None:
    src = synthetic_tree / "cohen" / "covid-chestxray-dataset"
    copy = tmp_path / "cohen2"
    shutil.copytree(src, copy)
    sources = {"cohen": {"format": "cohen", "path": str(src)}, "cohen_mirror": {"format": "cohen", "path": str(copy)}}
    manifest, quarantine = run_data_stage(sources, test_config["labels"], tmp_path / "out")
    assert set(manifest["source"]) == {"cohen"}
    dups = quarantine[quarantine["reason"].str.startswith("duplicate image")]
    assert len(dups) == len(manifest) and set(dups["source"]) == {"cohen_mirror"}
    assert dups["reason"].str.contains("as cohen/").all()


def test_strict_mode_fails_naming_the_file(tmp_path: Path, synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    src = synthetic_tree / "cohen"
    with pytest.raises(StrictModeError, match=r"excluded view 'L'"):
        run_data_stage({"cohen": {"format": "cohen", "path": str(src)}}, test_config["labels"], tmp_path, strict=True)
    assert not (tmp_path / "manifest.tsv").exists()


def test_manifest_rows_satisfy_the_manifest_schema(synthetic_manifest: Any) -> None:
    from snakemake.utils import validate

    from tests.conftest import ROOT

    manifest, _, _ = synthetic_manifest
    validate(manifest, str(ROOT / "workflow" / "schemas" / "manifest.schema.yaml"), set_default=False)
