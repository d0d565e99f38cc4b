"""Each synthetic source reads back with the standard reader, in the real format and layout."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from patchcxr.data.labels import LabelValue
from patchcxr.synthetic.cohen import COHEN_COLUMNS
from patchcxr.synthetic.jsrt import SCR_ORGANS
from patchcxr.synthetic.kermany import CORONAHACK_COLUMNS


def truth(tree: Path, source: str) -> pd.DataFrame:
    return pd.read_csv(
        tree / "ground_truth" / source / "images.tsv", sep="\t", dtype={"age": str}, keep_default_na=False
    )


def label_map(tree: Path, source: str, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(tree / "ground_truth" / source / "labels" / f"{image_id}.png"))


def test_jsrt_raw_12bit_big_endian(synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    files = sorted((synthetic_tree / "jsrt" / "All247images").glob("*.IMG"))
    cfg = test_config["synthetic"]["jsrt"]
    assert len([f for f in files if f.name.startswith("JPCNN")]) == cfg["non_nodule"]
    assert len([f for f in files if f.name.startswith("JPCLN")]) == cfg["nodule"]
    for f in files:
        assert re.fullmatch(r"JPC[LN]N\d{3}\.IMG", f.name)
        assert f.stat().st_size == 8_388_608
        raw = np.fromfile(f, ">u2").reshape(2048, 2048)
        assert raw.max() <= 4095
        labels = label_map(synthetic_tree, "jsrt", f.stem)
        # raw JSRT is inverted: air (lungs) reads high, dense tissue (heart) low
        assert (
            raw[(labels == LabelValue.LEFT_LUNG) | (labels == LabelValue.RIGHT_LUNG)].mean()
            > raw[labels == LabelValue.HEART].mean() + 500
        )


def test_scr_masks_are_binary_gifs_matching_the_films(synthetic_tree: Path) -> None:
    cases = truth(synthetic_tree, "jsrt")["image_id"]
    for n, case in enumerate(cases):
        fold = "fold1" if n % 2 == 0 else "fold2"
        for organ in SCR_ORGANS:
            path = synthetic_tree / "scr" / fold / "masks" / organ / f"{case}.gif"
            image = Image.open(path)
            assert image.format == "GIF"
            mask = np.asarray(image.convert("L"))
            assert mask.shape == (1024, 1024)
            assert set(np.unique(mask)) <= {0, 255}
            assert mask.any(), f"{organ} mask of {case} is empty"
        # the half-resolution masks describe the same anatomy as the 2048² film
        film = label_map(synthetic_tree, "jsrt", case)[::2, ::2]
        scr = (
            np.asarray(Image.open(synthetic_tree / "scr" / fold / "masks" / "left lung" / f"{case}.gif").convert("L"))
            > 0
        )
        ref = film == LabelValue.LEFT_LUNG
        dice = 2 * (scr & ref).sum() / (scr.sum() + ref.sum())
        assert dice > 0.98
        # SCR convention: the patient's left lung is on the image's right
        assert np.nonzero(scr)[1].mean() > 512


def test_montgomery_layout(synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    cfg = test_config["synthetic"]["montgomery"]
    root = synthetic_tree / "montgomery" / "MontgomerySet"
    images = sorted((root / "CXR_png").glob("*.png"))
    assert len(images) == sum(cfg["counts"].values())
    for f in images:
        assert re.fullmatch(r"MCUCXR_\d{4}_[01]\.png", f.name)
        image = Image.open(f)
        assert (image.mode, image.size) == ("L", (cfg["width"], cfg["height"]))
        assert np.asarray(image).dtype == np.uint8
        left = np.asarray(Image.open(root / "ManualMask" / "leftMask" / f.name))
        right = np.asarray(Image.open(root / "ManualMask" / "rightMask" / f.name))
        assert set(np.unique(left)) <= {0, 255} and set(np.unique(right)) <= {0, 255}
        assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()
        reading = (root / "ClinicalReadings" / f"{f.stem}.txt").read_text().splitlines()
        assert re.fullmatch(r"Patient's Sex: [MF]", reading[0])
        assert re.fullmatch(r"Patient's Age: \d{3}Y", reading[1])
    counts = truth(synthetic_tree, "montgomery")["label5"].value_counts().to_dict()
    assert counts == {k: v for k, v in cfg["counts"].items() if v}
    # the _0/_1 suffix is the class, as in the NLM release
    t = truth(synthetic_tree, "montgomery")
    assert all(t["image_id"].str.endswith("_1") == (t["label5"] == "tb"))


def test_shenzhen_palette_png_and_masks(synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    cfg = test_config["synthetic"]["shenzhen"]
    root = synthetic_tree / "shenzhen"
    images = sorted((root / "ChinaSet_AllFiles" / "CXR_png").glob("*.png"))
    assert len(images) == sum(cfg["counts"].values())
    for f in images:
        image = Image.open(f)
        assert image.mode == "P" and image.size == (cfg["width"], cfg["height"])
        # grey palette: decoding through the palette equals the indices
        assert np.array_equal(np.asarray(image.convert("L")), np.asarray(image))
        reading = (root / "ChinaSet_AllFiles" / "ClinicalReadings" / f"{f.stem}.txt").read_text().splitlines()
        assert re.fullmatch(r"(male|female) \d+yrs", reading[0])
    masks = sorted((root / "mask").glob("*_mask.png"))
    assert len(masks) == round(cfg["mask_fraction"] * len(images))
    for m in masks:
        mask = np.asarray(Image.open(m))
        labels = label_map(synthetic_tree, "shenzhen", m.name.removesuffix("_mask.png"))
        assert np.array_equal(mask > 0, (labels == LabelValue.LEFT_LUNG) | (labels == LabelValue.RIGHT_LUNG))


def test_kermany_folders_names_and_coronahack_csv(synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    cfg = test_config["synthetic"]["kermany"]
    root = synthetic_tree / "kermany"
    files = sorted((root / "chest_xray").glob("*/*/*.jpeg"))
    assert len(files) == sum(cfg["counts"].values())
    pattern = re.compile(r"(NORMAL2-)?IM-\d{4}-\d{4}\.jpeg|person\d+_(bacteria|virus)_\d+\.jpeg")
    modes = set()
    for f in files:
        split, folder = f.parts[-3], f.parts[-2]
        assert split in ("train", "test") and folder in ("NORMAL", "PNEUMONIA")
        assert pattern.fullmatch(f.name)
        assert (folder == "NORMAL") == f.name.startswith(("IM-", "NORMAL2-"))
        image = Image.open(f)
        assert image.format == "JPEG" and image.size == (cfg["width"], cfg["height"])
        modes.add(image.mode)
    assert modes <= {"L", "RGB"}
    with open(root / "Chest_xray_Corona_Metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == CORONAHACK_COLUMNS
    assert sorted(r["X_ray_image_name"] for r in rows) == sorted(f.name for f in files)
    by_name = {f.name: f for f in files}
    for r in rows:
        assert r["Dataset_type"].lower() == by_name[r["X_ray_image_name"]].parts[-3]
        assert r["Label"] in ("Normal", "Pnemonia")  # CoronaHack's own spelling
    # the label is in the file name, and equals the generator's truth
    t = truth(synthetic_tree, "kermany").set_index("image_id")
    for f in files:
        expected = "bacterial" if "_bacteria_" in f.name else "viral" if "_virus_" in f.name else "normal"
        assert t.loc[f.stem, "label5"] == expected
        assert t.loc[f.stem, "paediatric"] == 1


def test_cohen_metadata_and_images(synthetic_tree: Path, test_config: dict[str, Any]) -> None:
    cfg = test_config["synthetic"]["cohen"]
    root = synthetic_tree / "cohen" / "covid-chestxray-dataset"
    header = (root / "metadata.csv").read_text().splitlines()[0]
    assert header.split(",") == COHEN_COLUMNS
    meta = pd.read_csv(root / "metadata.csv", keep_default_na=False)
    assert len(meta) == sum(cfg["counts"].values()) + cfg["lateral"] + cfg["excluded"]
    for row in meta.itertuples():
        path = root / row.folder / row.filename
        image = Image.open(path)
        assert image.format == ("PNG" if path.suffix == ".png" else "JPEG")
        assert image.size == (cfg["width"], cfg["height"])
    assert (meta["view"] == "L").sum() == cfg["lateral"]
    assert meta["modality"].eq("X-ray").all()
    # several films of one patient keep the patient's demographics
    assert meta.groupby("patientid")[["sex", "age"]].nunique().max().max() == 1
    t = truth(synthetic_tree, "cohen")
    counts = t.loc[t["view"] != "L", "label5"].replace("", "excluded").value_counts().to_dict()
    expected = {k: v for k, v in cfg["counts"].items() if v} | (
        {"excluded": cfg["excluded"]} if cfg["excluded"] else {}
    )
    assert counts == expected


@pytest.mark.parametrize("source", ["jsrt", "montgomery", "shenzhen", "kermany", "cohen"])
def test_lesions_lie_in_the_lungs(synthetic_tree: Path, source: str) -> None:
    lesions = pd.read_csv(synthetic_tree / "ground_truth" / source / "lesions.tsv", sep="\t")
    t = truth(synthetic_tree, source).set_index("image_id")
    checked = 0
    for row in lesions.itertuples():
        if not t.loc[row.image_id, "label_map"]:
            continue  # lateral films have no PA label map
        labels = label_map(synthetic_tree, source, row.image_id)
        box = labels[row.y0 : row.y1, row.x0 : row.x1]
        side = LabelValue.LEFT_LUNG if row.side == "left" else LabelValue.RIGHT_LUNG
        assert (box == side).mean() > 0.2, f"{row.kind} of {row.image_id} is outside its lung"
        checked += 1
    assert checked == len(lesions) - (lesions["image_id"].map(lambda i: not t.loc[i, "label_map"])).sum()
