"""Readers of the formats the synthetic tree does not write: CoronaHack, a user's CSV, DICOM."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patchcxr.data.labels import LabelRules
from patchcxr.data.readers import read_source
from patchcxr.data.records import SourceLayoutError
from tests.helpers import write_dicom as _dicom


@pytest.fixture
def rules(test_config: dict[str, Any]) -> LabelRules:
    return LabelRules.from_config(test_config["labels"])


def test_coronahack_flat_layout_labels_from_its_csv(tmp_path: Path, synthetic_tree: Path, rules: LabelRules) -> None:
    root = tmp_path / "Coronahack-Chest-XRay-Dataset"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    src = synthetic_tree / "kermany"
    for f in (src / "chest_xray").glob("*/*/*.jpeg"):
        shutil.copy2(f, root / f.parts[-3] / f.name)
    rows = list(csv.DictReader(open(src / "Chest_xray_Corona_Metadata.csv")))
    rows.append(
        {
            "": "99",
            "X_ray_image_name": "ghost.jpeg",
            "Label": "Normal",
            "Dataset_type": "TEST",
            "Label_2_Virus_category": "",
            "Label_1_Virus_category": "",
        }
    )
    rows.append(
        rows[0]
        | {
            "X_ray_image_name": rows[0]["X_ray_image_name"].replace(".jpeg", "_x.jpeg"),
            "Label": "Pnemonia",
            "Label_1_Virus_category": "Stress-Smoking",
        }
    )
    shutil.copy2(next(root.glob("*/" + rows[0]["X_ray_image_name"])), root / "train" / rows[-1]["X_ray_image_name"])
    with open(root / "Chest_xray_Corona_Metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    index = read_source("coronahack", {"format": "coronahack", "path": str(root)}, rules)
    labels = {r.stem: r.label5 for r in index.records}
    for r in rows[:-2]:
        stem = r["X_ray_image_name"].removesuffix(".jpeg")
        expected = (
            "normal"
            if r["Label"] == "Normal"
            else "bacterial"
            if r["Label_1_Virus_category"] == "bacteria"
            else "viral"
        )
        assert labels[stem] == expected
    assert labels[rows[-1]["X_ray_image_name"].removesuffix(".jpeg")] == ""  # excluded category, kept unlabelled
    assert [q.reason for q in index.quarantine] == ["metadata row whose image is missing"]
    assert all(r.paediatric for r in index.records if not r.stem.endswith("_x"))  # Kermany names: children


def test_user_csv(tmp_path: Path, synthetic_tree: Path, rules: LabelRules) -> None:
    imgs = sorted((synthetic_tree / "montgomery" / "MontgomerySet" / "CXR_png").glob("*.png"))[:3]
    (tmp_path / "data").mkdir()
    for f in imgs:
        shutil.copy2(f, tmp_path / "data" / f.name)
    (tmp_path / "images.csv").write_text(
        "path,label,patient_id,view,sex,age\n"
        f"data/{imgs[0].name},covid19,p1,PA,F,54\n"
        f"data/{imgs[1].name},COVID-19,p1,AP,F,54\n"
        f"data/{imgs[2].name},martian flu,p2,PA,M,40\n"
        "data/missing.png,normal,p3,PA,,\n"
        f"data/{imgs[0].name},normal,p4,LL,,\n"
    )
    index = read_source("mine", {"format": "csv", "path": str(tmp_path)}, rules)
    assert [(r.label5, r.patient_id, r.view) for r in index.records] == [
        ("covid19", "mine:p1", "PA"),
        ("covid19", "mine:p1", "AP"),
    ]
    reasons = [q.reason for q in index.quarantine]
    assert any(r.startswith("unknown label 'martian flu'") for r in reasons)
    assert "metadata row whose image is missing" in reasons
    assert any(r.startswith("excluded view 'LL'") for r in reasons)


def test_dicom_folder(tmp_path: Path, rules: LabelRules) -> None:
    ramp = np.tile(np.arange(64, dtype=np.uint16) * 60, (64, 1))
    _dicom(tmp_path / "a.dcm", ramp, "MONOCHROME1")
    _dicom(tmp_path / "b.dcm", ramp, "MONOCHROME2")
    (tmp_path / "c.dcm").write_bytes(b"not dicom at all")
    index = read_source("pacs", {"format": "dicom", "path": str(tmp_path), "label": "covid19"}, rules)
    assert sorted(r.stem for r in index.records) == ["a", "b"]
    assert all(r.label5 == "covid19" and r.patient_id == "pacs:P1" for r in index.records)
    assert [q.file.endswith("c.dcm") for q in index.quarantine] == [True]


def test_missing_or_wrong_folder_is_a_clear_error(tmp_path: Path, rules: LabelRules) -> None:
    with pytest.raises(SourceLayoutError, match="does not exist"):
        read_source("x", {"format": "montgomery", "path": str(tmp_path / "nope")}, rules)
    with pytest.raises(SourceLayoutError, match="no MCUCXR"):
        read_source("x", {"format": "montgomery", "path": str(tmp_path)}, rules)
